"""bridge.AsgiToWsgi: an ASGI app driven through its WSGI callable (SPEC D, E, F)."""

from __future__ import annotations

import functools
import io
import logging
import sys
import threading
import warnings
import wsgiref.util
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast
from wsgiref.validate import validator

import anyio
import anyio.lowlevel
import pytest
from fastapi import FastAPI, Request
from werkzeug.test import Client

from bridge import (
    AppProtocolError,
    AsgiToWsgi,
    ClientDisconnected,
    LifespanStartupFailed,
    LifespanUnsupported,
)
from bridge import asgi_to_wsgi as asgi_to_wsgi_module
from bridge import loop as loop_module
from bridge.asgi_exchange import MESSAGE_COST
from bridge.loop import get_loop, stop_all_loops
from bridge.types import Environ, ExcInfo, Message, Receive, Scope, Send
from tests.garbage import NewCycles

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    pass

WAIT = 30.0  # generous bound for threading waits; never reached when things work


@pytest.fixture(autouse=True)
def _stop_loops() -> Iterator[None]:
    yield
    stop_all_loops()


Backend = Literal["asyncio", "trio"]


@pytest.fixture(params=["asyncio", "asyncio-stock-loop", "trio"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Backend:
    """The private loop's backend; asyncio both on uvloop (the default when
    installed) and on asyncio's own loop (the default without uvloop)."""
    if request.param == "asyncio-stock-loop":
        for module in (asgi_to_wsgi_module, loop_module):
            monkeypatch.setattr(module, "default_backend_options", lambda backend: {})
        return "asyncio"
    return cast(Backend, request.param)


def wsgi(adapter: AsgiToWsgi) -> WSGIApplication:
    """AsgiToWsgi as typeshed's WSGIApplication (whose exc_info type is narrower)."""
    return cast("WSGIApplication", adapter)


def make_environ(
    method: str = "GET",
    path: str = "/",
    body: bytes | None = None,
    *,
    input: Any = None,
    terminated: bool = False,
    **extra: str,
) -> Environ:
    environ: Environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body or b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if body is not None:
        environ["CONTENT_LENGTH"] = str(len(body))
    if input is not None:
        environ["wsgi.input"] = input
    if terminated:
        environ["wsgi.input_terminated"] = True
    environ.update(extra)
    return environ


@dataclass
class Result:
    status: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    exc_info: ExcInfo | None = None
    calls: int = 0
    chunks: list[bytes] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Any:
        self.status, self.headers, self.exc_info = status, headers, exc_info
        self.calls += 1
        return lambda data: pytest.fail("write() is never used by AsgiToWsgi")


def call(adapter: AsgiToWsgi, environ: Environ | None = None) -> Result:
    """Drive the adapter like a WSGI server, through wsgiref.validate."""
    result = Result()
    iterable = validator(wsgi(adapter))(environ or make_environ(), result.start_response)
    try:
        for chunk in iterable:
            result.chunks.append(chunk)
    finally:
        iterable.close()  # type: ignore[attr-defined]
    return result


async def read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    messages = []
    body = b""
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return body, messages
        body += message["body"]
        if not message["more_body"]:
            return body, messages


TEXT = [(b"content-type", b"text/plain")]


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": TEXT})
    await send({"type": "http.response.body", "body": b"hello"})


def test_hello(backend: Backend) -> None:
    result = call(AsgiToWsgi(hello, lifespan="off", backend=backend))
    assert result.status == "200 OK"
    assert result.headers == [("content-type", "text/plain")]
    assert result.body == b"hello"


def test_scope_reaches_the_app(backend: Backend) -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await hello(scope, receive, send)

    environ = make_environ(path="/caf\xc3\xa9", QUERY_STRING="a=1", HTTP_X_A="b")
    call(AsgiToWsgi(app, lifespan="off", backend=backend), environ)
    scope = seen[0]
    assert scope["path"] == "/café"
    assert scope["query_string"] == b"a=1"
    assert [b"x-a", b"b"] in scope["headers"]
    assert scope["asgi"]["spec_version"] == "2.4"
    assert scope["extensions"] == {"http.response.pathsend": {}}
    assert "state" not in scope  # lifespan off


# --------------------------------------------------------------- request body (D1, D2)


class RecordingInput:
    """A wsgi.input that records its reads and the thread doing them."""

    def __init__(self, data: bytes, *, fail: bool = False) -> None:
        self._stream = io.BytesIO(data)
        self.reads: list[int] = []
        self.threads: set[int] = set()
        self.fail = fail
        self.second_read = threading.Event()

    def read(self, size: int = -1) -> bytes:
        if self.fail:
            pytest.fail("wsgi.input must not be read")
        self.reads.append(size)
        self.threads.add(threading.get_ident())
        if len(self.reads) == 2:
            self.second_read.set()
        return self._stream.read(size)

    def readline(self, size: int = -1) -> bytes:
        return self._stream.readline(size)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return self._stream.readlines(hint)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._stream)


def echo_app(log: list[Message]) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body, messages = await read_body(receive)
        log.extend(messages)
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        await send({"type": "http.response.body", "body": body})

    return app


def test_body_read_in_bounded_chunks_in_the_wsgi_thread(backend: Backend) -> None:
    # D1: bounded chunks, last more_body=False, read in the server's thread.
    log: list[Message] = []
    stream = RecordingInput(b"0123456789EXTRA")
    environ = make_environ("POST", CONTENT_LENGTH="10", input=stream)
    result = call(AsgiToWsgi(echo_app(log), lifespan="off", backend=backend, chunk_size=4), environ)
    assert result.body == b"0123456789"  # CONTENT_LENGTH honoured, EXTRA never read
    assert [(m["body"], m["more_body"]) for m in log] == [
        (b"0123", True),
        (b"4567", True),
        (b"89", False),
    ]
    assert stream.reads == [4, 4, 2]
    assert stream.threads == {threading.get_ident()}


def test_body_is_read_ahead_in_the_wsgi_thread(backend: Backend) -> None:
    # D1 / rule 3 of bridge.asgi_body: after the chunk the app waited for, the
    # WSGI thread reads the next one before the app asks, so the next receive()
    # needs no round trip. The app blocks a worker thread (never the loop) until
    # that second read happened.
    stream = RecordingInput(b"0123456789")
    log: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        log.append(await receive())
        ahead = await anyio.to_thread.run_sync(stream.second_read.wait, WAIT)
        _, messages = await read_body(receive)
        log.extend(messages)
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        await send({"type": "http.response.body", "body": b"ahead" if ahead else b"no"})

    environ = make_environ("POST", CONTENT_LENGTH="10", input=stream)
    result = call(AsgiToWsgi(app, lifespan="off", backend=backend, chunk_size=4), environ)
    assert result.body == b"ahead"
    assert b"".join(m["body"] for m in log) == b"0123456789"
    assert [m["more_body"] for m in log] == [True, True, False]
    assert stream.threads == {threading.get_ident()}


def test_body_read_ahead_is_bounded(backend: Backend) -> None:
    # D1: an app that reads one chunk and answers: the thread read ahead at most
    # 4 * chunk_size bytes beyond it (rule 3 of bridge.asgi_body), never the
    # whole body.
    stream = RecordingInput(b"x" * 1000)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await hello(scope, receive, send)

    environ = make_environ("POST", CONTENT_LENGTH="1000", input=stream)
    result = call(AsgiToWsgi(app, lifespan="off", backend=backend, chunk_size=4), environ)
    assert result.body == b"hello"
    assert 1 <= len(stream.reads) <= 1 + 4
    assert all(size == 4 for size in stream.reads)


def test_body_early_eof_after_read_ahead_keeps_the_chunks_read(backend: Backend) -> None:
    # D1: chunks read ahead before the early EOF reach the app first, in order,
    # then http.disconnect.
    log: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        _, messages = await read_body(receive)
        log.extend(messages)

    environ = make_environ("POST", CONTENT_LENGTH="100", input=io.BytesIO(b"0123456789"))
    result = call(AsgiToWsgi(app, lifespan="off", backend=backend, chunk_size=4), environ)
    assert log == [
        {"type": "http.request", "body": b"0123", "more_body": True},
        {"type": "http.request", "body": b"4567", "more_body": True},
        {"type": "http.request", "body": b"89", "more_body": True},
        {"type": "http.disconnect"},
    ]
    assert result.status.startswith("400")


@pytest.mark.parametrize("length", [None, "", "0"])
def test_body_empty_is_one_message_without_reading(backend: Backend, length: str | None) -> None:
    # D1: missing or empty CONTENT_LENGTH -> read nothing (a read could block).
    log: list[Message] = []
    environ = make_environ("POST", input=RecordingInput(b"", fail=True))
    if length is not None:
        environ["CONTENT_LENGTH"] = length
    call(AsgiToWsgi(echo_app(log), lifespan="off", backend=backend), environ)
    assert log == [{"type": "http.request", "body": b"", "more_body": False}]


def test_body_read_lazily(backend: Backend) -> None:
    # D1: only on receive(), so 100-continue keeps working.
    environ = make_environ("POST", CONTENT_LENGTH="5", input=RecordingInput(b"x", fail=True))
    assert call(AsgiToWsgi(hello, lifespan="off", backend=backend), environ).body == b"hello"


def test_body_input_terminated_reads_to_eof(backend: Backend) -> None:
    # D1: wsgi.input_terminated -> read to EOF, no CONTENT_LENGTH needed.
    log: list[Message] = []
    environ = make_environ("POST", input=io.BytesIO(b"chunked body"), terminated=True)
    result = call(AsgiToWsgi(echo_app(log), lifespan="off", backend=backend, chunk_size=5), environ)
    assert result.body == b"chunked body"
    assert log[-1] == {"type": "http.request", "body": b"", "more_body": False}


def test_body_early_eof_is_a_disconnect(backend: Backend, caplog: pytest.LogCaptureFixture) -> None:
    # D1: "An early EOF becomes http.disconnect"; send() then raises (D7).
    log: list[Message] = []
    raised: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        _, messages = await read_body(receive)
        log.extend(messages)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        except OSError as exc:
            raised.append(exc)
            raise

    environ = make_environ("POST", CONTENT_LENGTH="100", input=io.BytesIO(b"short"))
    with caplog.at_level(logging.INFO, "bridge"):
        result = call(AsgiToWsgi(app, lifespan="off", backend=backend), environ)
    assert log[-1] == {"type": "http.disconnect"}
    assert isinstance(raised[0], ClientDisconnected)
    assert result.status.startswith("400")
    assert "early" in caplog.text


def test_bad_content_length_is_400(backend: Backend) -> None:
    # The server's fault; wsgiref.validate would reject this environ, so call directly.
    for length in ("-3", "abc"):
        result = Result()
        adapter = AsgiToWsgi(hello, lifespan="off", backend=backend)
        body = adapter(make_environ("POST", CONTENT_LENGTH=length), result.start_response)
        assert result.status.startswith("400")
        assert b"".join(body) == b"Bad Request"


def test_receive_after_body_waits_for_the_response(backend: Backend) -> None:
    # D2: blocks until the response completes, then http.disconnect; afterwards at once.
    events: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)

        async def watch() -> None:
            message = await receive()
            events.append("watcher " + message["type"])

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            await send({"type": "http.response.start", "status": 200, "headers": TEXT})
            await anyio.lowlevel.checkpoint()  # let the watcher block in receive()
            events.append("final body")
            await send({"type": "http.response.body", "body": b"done"})
        events.append("after " + (await receive())["type"])

    result = call(AsgiToWsgi(app, lifespan="off", backend=backend), make_environ("POST", body=b"x"))
    assert result.body == b"done"
    # The app runs on after its final body (background work): wait for it.
    deadline_event = threading.Event()
    get_loop(backend).call_soon(deadline_event.set)
    assert deadline_event.wait(WAIT)
    assert events[:2] == ["final body", "watcher http.disconnect"]


# --------------------------------------------------------------- response (D4-D6, D10-D12)


def test_start_converts_status_and_strips_hop_by_hop(backend: Backend) -> None:
    # D4
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [*TEXT, [b"connection", b"close"], [b"x-a", b"1"]]
        await send({"type": "http.response.start", "status": 418, "headers": headers})
        await send({"type": "http.response.body", "body": b"tea"})

    result = call(AsgiToWsgi(app, lifespan="off", backend=backend))
    assert result.status == "418 I'm a Teapot"
    assert result.headers == [("content-type", "text/plain"), ("x-a", "1")]


@pytest.mark.parametrize(
    "message",
    [
        {"type": "http.response.start", "status": 200, "headers": [["content-type", "x"]]},
        {"type": "http.response.start", "status": "200"},
        {"type": "http.response.body", "body": b"x"},
        {"type": "http.response.whatever"},
        # D14, D15: extensions a WSGI server cannot carry, never offered (test_scope).
        {"type": "http.response.early_hint", "links": [b"</a.css>; rel=preload"]},
        {"type": "http.response.push", "path": "/a.css", "headers": []},
        {"type": "http.response.debug", "info": {}},
    ],
)
def test_invalid_message_raises_from_send_and_gives_500(
    backend: Backend, message: Message, caplog: pytest.LogCaptureFixture
) -> None:
    # D6: invalid messages raise from send(); not started yet -> 500, never a hang.
    raised: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send(message)
        except AppProtocolError as exc:
            raised.append(exc)
            raise

    result = call(AsgiToWsgi(app, lifespan="off", backend=backend))
    assert isinstance(raised[0], AppProtocolError)
    assert result.status == "500 Internal Server Error"
    assert result.exc_info is not None
    assert result.exc_info[1] is raised[0]
    assert "Exception in ASGI application" in caplog.text


def test_message_after_completion_raises(backend: Backend) -> None:
    # D6 (our choice): a message after completion raises AppProtocolError.
    raised: list[BaseException] = []
    done = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await hello(scope, receive, send)
        try:
            await send({"type": "http.response.body", "body": b"late"})
        except AppProtocolError as exc:
            raised.append(exc)
        done.set()

    assert call(AsgiToWsgi(app, lifespan="off", backend=backend)).body == b"hello"
    assert done.wait(WAIT)
    assert "complete" in str(raised[0])


def test_body_streams_in_order_without_empty_chunks(backend: Backend) -> None:
    # D5: the body messages' bytes in order; empty chunks yield nothing.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        for chunk in (b"a", b"", b"bb", b"ccc"):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    result = call(AsgiToWsgi(app, lifespan="off", backend=backend))
    assert b"".join(result.chunks) == b"abbccc"
    assert all(result.chunks)


def test_small_chunks_queued_meanwhile_go_out_as_one(backend: Backend) -> None:
    # What accumulated while the server was writing is one chunk (fewer writes);
    # the first chunk was not held back waiting for it.
    all_sent = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        for _ in range(10):
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        all_sent.set()

    adapter = AsgiToWsgi(app, lifespan="off", backend=backend)
    result = Result()
    iterable = validator(wsgi(adapter))(make_environ(), result.start_response)
    try:
        chunks = iter(iterable)
        assert next(chunks) == b"first"
        assert all_sent.wait(WAIT)  # the server is "writing" while the app goes on
        assert list(chunks) == [b"x" * 10]
    finally:
        iterable.close()  # type: ignore[attr-defined]


def test_backpressure_send_waits_for_the_server(backend: Backend) -> None:
    # D5: with send_buffer=0, send() returns only once the server asked for more,
    # i.e. after it wrote the previous chunk. No sleeps: the order is forced.
    returned: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        for index in range(5):
            await send({"type": "http.response.body", "body": b"%d" % index, "more_body": True})
            returned.append(index)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    adapter = AsgiToWsgi(app, lifespan="off", backend=backend, send_buffer=0)
    result = Result()
    iterable = validator(wsgi(adapter))(make_environ(), result.start_response)
    try:
        for index, chunk in enumerate(iterable):
            assert chunk == b"%d" % index
            # The app's send() of this chunk has not returned: it waits for us.
            assert returned == list(range(index))
    finally:
        iterable.close()  # type: ignore[attr-defined]
    assert returned == list(range(5))


def consume_counting(adapter: AsgiToWsgi, consumed: list[int]) -> None:
    """Iterate the response like a WSGI server, adding each chunk's size to ``consumed[0]``."""
    result = Result()
    iterable = validator(wsgi(adapter))(make_environ(), result.start_response)
    try:
        for chunk in iterable:
            consumed[0] += len(chunk)
    finally:
        iterable.close()  # type: ignore[attr-defined]


def test_backpressure_buffer_is_bounded(backend: Backend) -> None:
    # D5: the app never runs ahead by more than send_buffer bytes plus one message.
    ahead: list[int] = []
    consumed = [0]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        sent = 0
        for _ in range(50):
            await send({"type": "http.response.body", "body": b"x" * 10, "more_body": True})
            sent += 10
            ahead.append(sent - consumed[0])
        await send({"type": "http.response.body", "body": b""})

    adapter = AsgiToWsgi(app, lifespan="off", backend=backend, send_buffer=30)
    consume_counting(adapter, consumed)
    assert consumed[0] == 500
    assert max(ahead) <= 30 + 10 + 10  # buffer + one message + the one being written


def test_backpressure_counts_what_a_queued_message_costs(backend: Backend) -> None:
    # D5, rule 4 of bridge.asgi_exchange: tiny messages queue no more than
    # send_buffer allows in memory: each counts MESSAGE_COST beyond its byte.
    ahead: list[int] = []
    consumed = [0]
    send_buffer = 10 * MESSAGE_COST

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        for sent in range(1, 5001):
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
            ahead.append(sent - consumed[0])
        await send({"type": "http.response.body", "body": b""})

    adapter = AsgiToWsgi(app, lifespan="off", backend=backend, send_buffer=send_buffer)
    consume_counting(adapter, consumed)
    assert consumed[0] == 5000
    # The buffer's worth, plus the chunk being written (joined from at most as many).
    assert max(ahead) <= 2 * (send_buffer // (1 + MESSAGE_COST) + 1), max(ahead)


@pytest.mark.parametrize(
    ("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304), ("HEAD", 404)]
)
def test_no_body_responses_keep_content_length(backend: Backend, method: str, status: int) -> None:
    # D10: drop the body, keep Content-Length.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [[b"content-length", b"5"]]
        if status not in (204, 304):
            headers.append([b"content-type", b"text/plain"])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"hel", "more_body": True})
        await send({"type": "http.response.body", "body": b"lo"})

    result = call(AsgiToWsgi(app, lifespan="off", backend=backend), make_environ(method))
    assert result.status.startswith(str(status))
    assert ("content-length", "5") in result.headers
    assert result.body == b""


def test_trailers_are_awaited_and_discarded(backend: Backend) -> None:
    # D11
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": 200, "headers": TEXT, "trailers": True}
        await send(start)
        await send({"type": "http.response.body", "body": b"data"})
        await send(
            {"type": "http.response.trailers", "headers": [[b"x-sum", b"1"]], "more_trailers": True}
        )
        await send({"type": "http.response.trailers", "headers": []})

    result = call(AsgiToWsgi(app, lifespan="off", backend=backend))
    assert result.body == b"data"
    assert all(name != "x-sum" for name, _ in result.headers)


def pathsend_app(path: str) -> Any:
    headers = list(TEXT)
    if Path(path).exists():
        headers.append((b"content-length", b"%d" % Path(path).stat().st_size))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": path})

    return app


@pytest.mark.parametrize("file_wrapper", [True, False])
def test_pathsend(backend: Backend, tmp_path: Path, file_wrapper: bool) -> None:
    # D12: wsgi.file_wrapper(open(path, "rb")) if offered, else chunked reads.
    target = tmp_path / "file.txt"
    target.write_bytes(b"x" * 1000 + b"end")
    environ = make_environ()
    if file_wrapper:
        environ["wsgi.file_wrapper"] = wsgiref.util.FileWrapper
    adapter = AsgiToWsgi(pathsend_app(str(target)), lifespan="off", backend=backend, chunk_size=256)
    result = call(adapter, environ)
    assert result.body == b"x" * 1000 + b"end"
    assert len(result.chunks) == 4
    assert call(adapter, make_environ("HEAD")).body == b""


def test_pathsend_missing_file_is_500(backend: Backend, tmp_path: Path) -> None:
    adapter = AsgiToWsgi(pathsend_app(str(tmp_path / "missing")), lifespan="off", backend=backend)
    assert call(adapter).status == "500 Internal Server Error"


# --------------------------------------------------------------- errors (D8, D9)


def test_exception_before_start_is_500_with_exc_info(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    # D9
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("boom")

    result = call(AsgiToWsgi(app, lifespan="off", backend=backend))
    assert result.status == "500 Internal Server Error"
    assert result.exc_info is not None
    assert isinstance(result.exc_info[1], ValueError)
    assert result.calls == 1
    assert "Exception in ASGI application" in caplog.text
    assert "boom" in caplog.text


def test_exception_after_start_before_body_is_500(backend: Backend) -> None:
    # D9/D16: start is held until the first body, so the error can still be a 500.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        raise ValueError("boom")

    result = call(AsgiToWsgi(app, lifespan="off", backend=backend))
    assert result.status == "500 Internal Server Error"


def test_exception_after_body_propagates_from_the_iterator(backend: Backend) -> None:
    # D9: after the body started, the server must abort: the exception propagates.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise ValueError("late boom")

    with pytest.raises(ValueError, match="late boom"):
        call(AsgiToWsgi(app, lifespan="off", backend=backend))


def test_return_without_start_is_500(backend: Backend, caplog: pytest.LogCaptureFixture) -> None:
    # D8
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    result = call(AsgiToWsgi(app, lifespan="off", backend=backend))
    assert result.status == "500 Internal Server Error"
    assert "returned without starting response" in caplog.text


def test_return_without_final_body_ends_the_response(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    # D8: "Start but no final body -> end the response and log."
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})

    result = call(AsgiToWsgi(app, lifespan="off", backend=backend))
    assert (result.status, result.body) == ("200 OK", b"partial")
    assert "without completing the response" in caplog.text


def test_non_none_return_is_logged(backend: Backend, caplog: pytest.LogCaptureFixture) -> None:
    # D8: "Non-None return -> log."
    async def app(scope: Scope, receive: Receive, send: Send) -> int:
        await hello(scope, receive, send)
        return 42

    done = threading.Event()

    class Flag(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "non-None" in record.getMessage():
                done.set()

    handler = Flag()
    logging.getLogger("bridge").addHandler(handler)
    try:
        assert call(AsgiToWsgi(app, lifespan="off", backend=backend)).body == b"hello"
        assert done.wait(WAIT)
    finally:
        logging.getLogger("bridge").removeHandler(handler)


# --------------------------------------------------------------- disconnect (D7)


def read_first_then_leave(adapter: AsgiToWsgi, first: bytes = b"first") -> None:
    """Serve one request, read its first chunk, then close the iterable: the client left (D7)."""
    result = Result()
    iterable = validator(wsgi(adapter))(make_environ(), result.start_response)
    assert next(iter(iterable)) == first
    iterable.close()  # type: ignore[attr-defined]


def test_early_close_is_a_disconnect(backend: Backend) -> None:
    # D7: receive() -> http.disconnect, send() raises ClientDisconnected (an OSError).
    seen: list[Any] = []
    finished = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)

        async def watch() -> None:
            seen.append((await receive())["type"])

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                try:
                    await send({"type": "http.response.start", "status": 200, "headers": TEXT})
                    while True:
                        await send({"type": "http.response.body", "body": b"t", "more_body": True})
                except OSError as exc:
                    seen.append(exc)
        finally:
            finished.set()

    read_first_then_leave(AsgiToWsgi(app, lifespan="off", backend=backend, send_buffer=0), b"t")
    assert finished.wait(WAIT)
    assert "http.disconnect" in seen
    assert any(isinstance(item, ClientDisconnected) for item in seen)


def test_app_ignoring_disconnect_is_cancelled_after_grace(backend: Backend) -> None:
    # D7: "cancel the app after a bounded wait".
    cancelled = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise

    read_first_then_leave(AsgiToWsgi(app, lifespan="off", backend=backend, disconnect_grace=0))
    assert cancelled.wait(WAIT)


def test_app_swallowing_its_cancellation_is_cancelled_again(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    # D7 on asyncio, where a task may catch CancelledError and run on: the
    # cancel is repeated (and logged) until the app ends. trio's cancellation
    # is level-triggered: the second sleep is cancelled at once.
    caught = threading.Event()
    ended = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        try:
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                caught.set()  # swallowed: a misbehaving app goes on
            await anyio.sleep_forever()
        finally:
            ended.set()

    read_first_then_leave(AsgiToWsgi(app, lifespan="off", backend=backend, disconnect_grace=0))
    assert caught.wait(WAIT)
    assert ended.wait(WAIT)
    if backend == "asyncio":
        assert "kept running after it was cancelled" in caplog.text


# --------------------------------------------------------------- ASGI 2 and 3 (F)


async def _asgi3_instance_call(scope: Scope, receive: Receive, send: Send) -> None:
    await hello(scope, receive, send)


class Asgi3Instance:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await hello(scope, receive, send)


class Asgi2Class:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, receive: Receive, send: Send) -> None:
        await hello(self.scope, receive, send)


def asgi2_closure(scope: Scope) -> Any:
    async def instance(receive: Receive, send: Send) -> None:
        await hello(scope, receive, send)

    return instance


async def with_greeting(scope: Scope, receive: Receive, send: Send, *, greeting: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": TEXT})
    await send({"type": "http.response.body", "body": greeting})


def sync_returning_coroutine(scope: Scope, receive: Receive, send: Send) -> Any:
    return hello(scope, receive, send)


@pytest.mark.parametrize(
    ("app", "asgi_version", "body"),
    [
        (hello, "auto", b"hello"),
        (Asgi3Instance(), "auto", b"hello"),
        (Asgi2Class, "auto", b"hello"),
        (asgi2_closure, "auto", b"hello"),
        (functools.partial(with_greeting, greeting=b"hi"), "auto", b"hi"),
        (sync_returning_coroutine, "3", b"hello"),  # F3: explicit override
    ],
    ids=["async-def", "async-call-instance", "asgi2-class", "asgi2-closure", "partial", "override"],
)
def test_asgi2_and_asgi3_apps(backend: Backend, app: Any, asgi_version: Any, body: bytes) -> None:
    # F1-F3
    adapter = AsgiToWsgi(app, lifespan="off", backend=backend, asgi_version=asgi_version)
    assert call(adapter).body == body


class Asgi2Versions:
    """An ASGI 2 app (a class) that records ``asgi.version`` of every scope it is given."""

    seen: ClassVar[list[str]] = []

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        Asgi2Versions.seen.append(scope["asgi"]["version"])

    async def __call__(self, receive: Receive, send: Send) -> None:
        if self.scope["type"] != "lifespan":
            await hello(self.scope, receive, send)
            return
        for step in ("startup", "shutdown"):
            await receive()
            await send({"type": f"lifespan.{step}.complete"})


def asgi2_versions_closure(scope: Scope) -> Any:
    Asgi2Versions.seen.append(scope["asgi"]["version"])
    return Asgi2Versions(scope).__call__


async def asgi3_versions(scope: Scope, receive: Receive, send: Send) -> None:
    Asgi2Versions.seen.append(scope["asgi"]["version"])
    await hello(scope, receive, send)


def asgi3_versions_sync(scope: Scope, receive: Receive, send: Send) -> Any:
    return asgi3_versions(scope, receive, send)


@pytest.mark.parametrize(
    ("app", "asgi_version", "expected"),
    [
        (Asgi2Versions, "auto", "2.0"),
        (Asgi2Versions, "2", "2.0"),
        (asgi3_versions, "auto", "3.0"),
        (asgi3_versions_sync, "3", "3.0"),
    ],
    ids=["asgi2-class", "asgi2-override", "asgi3", "asgi3-override"],
)
def test_scope_says_which_asgi_version_calls_the_app(
    backend: Backend, app: Any, asgi_version: Any, expected: str
) -> None:
    # F4: asgi.version names the calling convention: "2.0" for an ASGI 2 app,
    # as uvicorn says, in every request's scope.
    Asgi2Versions.seen = []
    adapter = AsgiToWsgi(app, lifespan="off", backend=backend, asgi_version=asgi_version)
    for _ in range(2):
        assert call(adapter).body == b"hello"
    assert Asgi2Versions.seen == [expected, expected]


def test_asgi2_closure_is_told_2_0() -> None:
    # F4 with a closure (detected as ASGI 2: a plain function of one argument).
    Asgi2Versions.seen = []
    assert call(AsgiToWsgi(asgi2_versions_closure, lifespan="off")).body == b"hello"
    # The closure and the instance it builds both record the scope they got.
    assert Asgi2Versions.seen == ["2.0", "2.0"]


def test_lifespan_scope_says_2_0_to_an_asgi2_app(backend: Backend) -> None:
    # F4 for the lifespan scope (E2) of an ASGI 2 app, and the request after it.
    Asgi2Versions.seen = []
    with AsgiToWsgi(Asgi2Versions, backend=backend) as adapter:
        assert call(adapter).body == b"hello"
    assert Asgi2Versions.seen == ["2.0", "2.0"]


# --------------------------------------------------------------- concurrency


def test_many_threads_share_one_loop(backend: Backend) -> None:
    loop_threads: set[int] = set()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        loop_threads.add(threading.get_ident())
        body, _ = await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b"!"})

    adapter = AsgiToWsgi(app, lifespan="off", backend=backend, chunk_size=3)
    errors: list[BaseException] = []
    bodies: list[bytes] = []
    lock = threading.Lock()

    def worker(start: int) -> None:
        try:
            for number in range(start, 100, 16):
                payload = b"request %d" % number
                result = call(adapter, make_environ("POST", body=payload))
                with lock:
                    bodies.append(result.body)
                assert result.body == payload + b"!"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not errors
    assert len(bodies) == 100
    assert loop_threads == {get_loop(backend).thread_ident}


# --------------------------------------------------------------- lifespan (E)


def lifespan_app(events: list[str], *, fail: bool = False) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    if fail:
                        await send({"type": "lifespan.startup.failed", "message": "no db"})
                        return
                    scope["state"]["counter"] = [0]
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        state = scope["state"]
        state["counter"][0] += 1
        state["leak"] = True  # a top-level assignment must not leak (C10)
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        await send({"type": "http.response.body", "body": b"%d" % state["counter"][0]})

    return app


def test_lifespan_lazy_once_state_copied(backend: Backend) -> None:
    # E1, E3, E10, C10: startup once before the first request; shallow copies.
    events: list[str] = []
    adapter = AsgiToWsgi(lifespan_app(events), backend=backend)
    assert events == []
    assert call(adapter).body == b"1"
    assert call(adapter).body == b"2"
    assert events == ["lifespan.startup"]
    adapter.close()  # E6
    assert events == ["lifespan.startup", "lifespan.shutdown"]


def test_lifespan_context_manager(backend: Backend) -> None:
    events: list[str] = []
    with AsgiToWsgi(lifespan_app(events), backend=backend) as adapter:
        assert events == ["lifespan.startup"]
        assert call(adapter).body == b"1"
    assert events == ["lifespan.startup", "lifespan.shutdown"]


def test_lifespan_startup_runs_once_under_concurrency(backend: Backend) -> None:
    events: list[str] = []
    adapter = AsgiToWsgi(lifespan_app(events), backend=backend)
    barrier = threading.Barrier(8)
    bodies: list[bytes] = []

    def worker() -> None:
        barrier.wait(WAIT)
        bodies.append(call(adapter).body)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert sorted(bodies) == [b"%d" % n for n in range(1, 9)]
    assert events == ["lifespan.startup"]
    adapter.close()


def test_lifespan_failed_startup_answers_500(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    # E4: refuse to serve with a 500 and a log line, never a hang.
    events: list[str] = []
    adapter = AsgiToWsgi(lifespan_app(events, fail=True), backend=backend)
    for _ in range(2):
        assert call(adapter).status == "500 Internal Server Error"
    assert events == ["lifespan.startup"]
    assert "lifespan startup failed" in caplog.text
    assert "no db" in caplog.text
    with pytest.raises(LifespanStartupFailed, match="no db"):
        AsgiToWsgi(lifespan_app([], fail=True), backend=backend).__enter__()
    adapter.close()


async def no_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope {scope['type']}")
    await hello(scope, receive, send)


def test_lifespan_auto_serves_apps_without_lifespan(backend: Backend) -> None:
    # E5
    with AsgiToWsgi(no_lifespan, backend=backend) as adapter:
        assert call(adapter).body == b"hello"


def test_lifespan_on_requires_support(backend: Backend) -> None:
    adapter = AsgiToWsgi(no_lifespan, lifespan="on", backend=backend)
    with pytest.raises(LifespanUnsupported):
        adapter.__enter__()
    assert call(adapter).status == "500 Internal Server Error"
    adapter.close()


def test_lifespan_off_skips(backend: Backend) -> None:
    events: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        events.append(scope["type"])
        await hello(scope, receive, send)

    with AsgiToWsgi(app, lifespan="off", backend=backend) as adapter:
        call(adapter)
    assert events == ["http"]


class Resource:
    def __init__(self) -> None:
        self.opened = True
        self.uses = 0


def make_fastapi_app(resources: list[Resource]) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        resource = Resource()
        resources.append(resource)
        yield {"resource": resource}
        resource.opened = False

    api = FastAPI(lifespan=lifespan)

    @api.get("/use")
    async def use(request: Request) -> dict[str, Any]:
        resource: Resource = request.state.resource
        resource.uses += 1
        return {"opened": resource.opened, "uses": resource.uses}

    @api.post("/echo")
    async def echo(request: Request) -> dict[str, str]:
        return {"got": (await request.body()).decode()}

    return api


def test_fastapi_lifespan_resource(backend: Backend) -> None:
    resources: list[Resource] = []
    with AsgiToWsgi(make_fastapi_app(resources), backend=backend) as adapter:
        result = call(adapter, make_environ(path="/use"))
        assert result.status == "200 OK"
        assert result.body == b'{"opened":true,"uses":1}'
        environ = make_environ("POST", "/echo", body=b"payload", CONTENT_TYPE="text/plain")
        assert call(adapter, environ).body == b'{"got":"payload"}'
    assert len(resources) == 1
    assert resources[0].opened is False


def test_werkzeug_client(backend: Backend) -> None:
    resources: list[Resource] = []
    with AsgiToWsgi(make_fastapi_app(resources), backend=backend) as adapter:
        client = Client(wsgi(adapter))
        response = client.get("/use")
        assert response.status_code == 200
        assert response.json == {"opened": True, "uses": 1}
        response = client.post("/echo", data=b"hello werkzeug")
        assert response.json == {"got": "hello werkzeug"}
    assert resources[0].opened is False


def test_webtest_client(backend: Backend) -> None:
    # webob (under webtest) imports the stdlib cgi module, deprecated since 3.11:
    # a narrow ignore of that one third-party warning, at import only.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "'cgi' is deprecated", DeprecationWarning)
        import webtest

    resources: list[Resource] = []
    with AsgiToWsgi(make_fastapi_app(resources), backend=backend) as adapter:
        app = webtest.TestApp(adapter)
        assert app.get("/use").json == {"opened": True, "uses": 1}
        assert app.post("/echo", b"hello webtest").json == {"got": "hello webtest"}
        assert app.get("/missing", status=404).status_int == 404
    assert resources[0].opened is False


async def _echo_streamed(scope: Scope, receive: Receive, send: Send) -> None:
    body, _ = await read_body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": TEXT})
    for _ in range(20):
        await send({"type": "http.response.body", "body": b"x" * 4096, "more_body": True})
    await send({"type": "http.response.body", "body": body})


def test_a_request_leaves_no_reference_cycles(backend: Backend) -> None:
    # Garbage in a cycle outlives the request until the collector runs, and the
    # collector's passes cost every request of the process: a request served
    # to the end must free all it made by reference counting alone, on the
    # server's thread and on the private loop's.
    adapter = AsgiToWsgi(_echo_streamed, lifespan="off", backend=backend, chunk_size=1000)
    upload = b"u" * 10_000
    call(adapter, make_environ("POST", body=upload))  # warm-up: starts the loop
    with NewCycles() as cycles:
        for _ in range(3):
            result = call(adapter, make_environ("POST", body=upload))
            assert result.body == b"x" * 4096 * 20 + upload
    assert cycles.found == 0, f"{cycles.found} objects were only freed by the cycle collector"
