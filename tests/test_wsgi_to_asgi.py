"""SPEC B1–B21, D3: WsgiToAsgi driven directly (scripted receive, recording send)."""

from __future__ import annotations

import contextvars
import gc
import hashlib
import io
import itertools
import logging
import tempfile
import threading
import weakref
import wsgiref.validate
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import httpx
import pytest

from bridge import ClientDisconnected, ServerProtocolError, WsgiToAsgi
from bridge.errors import AppProtocolError
from bridge.types import Environ, Message, StartResponse, WSGIApp
from bridge.wsgi_greenlet import CHECKPOINT_BYTES, CHECKPOINT_CHUNKS
from tests.garbage import NewCycles
from tests.scopes import http_scope

pytestmark = pytest.mark.anyio

#: Every test below runs on each executor (and each backend), except those
#: marked @thread_only: they are about worker threads as such.
EXECUTORS = ("thread", "greenlet")
_selected = {"executor": "thread"}

TestFn = TypeVar("TestFn", bound=Callable[..., Any])


def only(executor: str) -> Callable[[TestFn], TestFn]:
    """Run the decorated test on ``executor`` only (it is about that executor)."""

    def mark(test: TestFn) -> TestFn:
        test.__dict__["executors"] = [executor]
        return test

    return mark


thread_only = only("thread")
greenlet_only = only("greenlet")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "executor" in metafunc.fixturenames:
        executors = metafunc.function.__dict__.get("executors", list(EXECUTORS))
        metafunc.parametrize("executor", executors)


@pytest.fixture(autouse=True)
def _use_executor(executor: str) -> Iterator[None]:
    """Make :func:`adapter` and :func:`call` build adapters on ``executor``."""
    _selected["executor"] = executor
    yield
    _selected["executor"] = "thread"


def adapter(app: WSGIApp, **options: Any) -> WsgiToAsgi:
    """``WsgiToAsgi(app, **options)`` on the executor under test."""
    return WsgiToAsgi(app, executor=_selected["executor"], **options)  # type: ignore[arg-type]


def on_greenlet() -> bool:
    return _selected["executor"] == "greenlet"


TEXT = [("Content-Type", "text/plain")]
END = {"type": "http.response.body", "body": b"", "more_body": False}


def validated(app: WSGIApp) -> WSGIApp:
    return wsgiref.validate.validator(app)


class Peer:
    """A scripted ASGI server: receive() replays ``incoming`` then waits for
    ``disconnect``; send() records, and may block or raise on a given message."""

    def __init__(self, incoming: list[Message] | None = None) -> None:
        self.incoming = list(incoming) if incoming is not None else [{"type": "http.request"}]
        self.sent: list[Message] = []
        self.disconnect = anyio.Event()
        self.receive_calls = 0
        self.on_send: Callable[[Message], Any] | None = None

    async def receive(self) -> Message:
        self.receive_calls += 1
        if self.incoming:
            return self.incoming.pop(0)
        await self.disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        if self.on_send is not None:
            outcome = self.on_send(message)
            if outcome is not None:
                await outcome

    @property
    def start(self) -> Message:
        assert self.sent[0]["type"] == "http.response.start", self.sent
        return self.sent[0]

    @property
    def status(self) -> int:
        return int(self.start["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.start["headers"])

    @property
    def bodies(self) -> list[Message]:
        return [m for m in self.sent if m["type"] == "http.response.body"]

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.bodies)


async def call(app: WSGIApp, peer: Peer | None = None, **scope: Any) -> Peer:
    peer = peer or Peer()
    await adapter(app)(http_scope(**scope), peer.receive, peer.send)
    return peer


class Result:
    """A response iterable that counts close() calls and pulls."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = iter(chunks)
        self.closes = 0
        self.pulled = 0
        self.close_thread: int | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        chunk = next(self.chunks)
        self.pulled += 1
        return chunk

    def close(self) -> None:
        self.closes += 1
        self.close_thread = threading.get_ident()


def app_returning(result: Any, status: str = "200 OK", headers: Any = None) -> WSGIApp:
    def app(environ: Environ, start_response: StartResponse) -> Any:
        start_response(status, TEXT if headers is None else headers)
        return result

    return app


# -- B1, B8, B10, B11, B16, B21 ----------------------------------------------------


async def test_call_is_async_asgi3() -> None:  # B21
    import inspect

    assert inspect.iscoroutinefunction(WsgiToAsgi(app_returning([])).__call__)


async def test_list_response_one_message_per_chunk_with_content_length() -> None:  # B8, B10, B16
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(threading.get_ident())
        start_response("201 Created", [("Content-Type", "text/plain"), ("X-Order", "1")])
        return [b"hello ", b"", b"world"]

    peer = await call(app)
    assert seen
    # B1: a worker thread; the greenlet executor runs inline, on the loop's thread.
    assert (seen[0] == loop_thread) is on_greenlet()
    assert peer.sent == [
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"x-order", b"1"),
                (b"content-length", b"11"),
            ],
        },
        {"type": "http.response.body", "body": b"hello ", "more_body": True},
        {"type": "http.response.body", "body": b"world", "more_body": False},
    ]


async def test_generator_streams_each_chunk_then_ends() -> None:  # B10
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b"a"
        yield b""
        yield b"b"

    peer = await call(validated(app))
    assert peer.status == 200
    assert b"content-length" not in peer.headers
    if on_greenlet():
        # B10 to the letter: one message per non-empty chunk, then the end.
        assert peer.bodies == [
            {"type": "http.response.body", "body": b"a", "more_body": True},
            {"type": "http.response.body", "body": b"b", "more_body": True},
            END,
        ]
    else:
        # Thread executor: chunks queued together may leave as one message
        # (see WsgiToAsgi's docstring); bytes, order and the end are B10's.
        assert peer.body == b"ab"
        assert all(m["more_body"] for m in peer.bodies[:-1])
        assert peer.bodies[-1]["more_body"] is False


@pytest.mark.parametrize("empty", [[], (), iter(())], ids=["list", "tuple", "iterator"])
async def test_empty_result_still_starts_and_ends(empty: Any) -> None:  # B11
    peer = await call(app_returning(empty))
    assert peer.status == 200
    assert peer.bodies == [END]


async def test_validated_list_response() -> None:  # B1-B11 through wsgiref.validate
    peer = await call(validated(app_returning([b"x", b"y"])))
    assert peer.body == b"xy"
    assert peer.sent[-1]["more_body"] is False


async def test_close_runs_on_the_sync_side() -> None:  # B1
    result = Result([b"a"])
    await call(app_returning(result))
    assert result.closes == 1
    # In the worker thread; with greenlets, in the app's greenlet on the loop thread.
    assert (result.close_thread == threading.get_ident()) is on_greenlet()


# -- B7 --------------------------------------------------------------------------


async def test_no_start_before_first_non_empty_chunk() -> None:  # B7
    peer = Peer()
    seen_before_second: list[Message] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b""
        seen_before_second.extend(peer.sent)  # the app is pulled for its second chunk
        yield b"x"

    await call(validated(app), peer)
    assert seen_before_second == []
    assert peer.body == b"x"


@thread_only
async def test_no_start_while_the_app_blocks_after_an_empty_chunk() -> None:  # B7
    peer = Peer()
    token = anyio.lowlevel.current_token()
    pulled_second = anyio.Event()
    release = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b""
        anyio.from_thread.run_sync(pulled_second.set, token=token)
        assert release.wait(30)
        yield b"x"

    async with anyio.create_task_group() as group:
        group.start_soon(call, validated(app), peer)
        await pulled_second.wait()
        assert peer.sent == []
        release.set()
    assert peer.body == b"x"


@thread_only
async def test_content_length_zero_starts_early() -> None:  # B7
    peer = Peer()
    started = anyio.Event()
    release = threading.Event()
    peer.on_send = lambda m: started.set() if m["type"] == "http.response.start" else None

    def blocked() -> Iterator[bytes]:
        assert release.wait(30)
        yield b""

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("204 No Content", [("Content-Length", "0")])
        return blocked()

    async with anyio.create_task_group() as group:
        group.start_soon(call, app, peer)
        await started.wait()
        assert peer.status == 204
        release.set()
    assert peer.bodies == [END]


@thread_only
async def test_first_write_starts_the_response() -> None:  # B7, B13
    peer = Peer()
    started = anyio.Event()
    release = threading.Event()
    peer.on_send = lambda m: started.set()

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"")
        assert release.wait(30)
        return []

    async with anyio.create_task_group() as group:
        group.start_soon(call, app, peer)
        await started.wait()
        assert peer.sent == [peer.start]
        release.set()
    assert peer.bodies == [END]


@greenlet_only
async def test_greenlet_start_goes_out_before_the_app_continues() -> None:  # B7, B13
    # Inline executor: each emit is sent before the app resumes (no queue).
    peer = Peer()
    after_write: list[Message] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"")
        after_write.extend(peer.sent)
        return []

    await call(app, peer)
    assert after_write == [peer.start]
    assert peer.bodies == [END]

    peer = Peer()
    before_first_chunk: list[Message] = []

    def body() -> Iterator[bytes]:
        before_first_chunk.extend(peer.sent)
        yield b""

    await call(app_returning(body(), headers=[("Content-Length", "0")]), peer)
    assert before_first_chunk == [peer.start]
    assert peer.bodies == [END]


async def test_a_chunk_reaching_content_length_ends_the_body() -> None:  # B14
    # One message fewer than a separate empty final body, on both executors;
    # the iterable is not pulled again, and still closed once.
    result = Result([b"hel", b"lo", b"never pulled"])
    peer = await call(app_returning(result, headers=[("Content-Length", "5")]))
    assert peer.bodies == [
        {"type": "http.response.body", "body": b"hel", "more_body": True},
        {"type": "http.response.body", "body": b"lo", "more_body": False},
    ] or peer.bodies == [{"type": "http.response.body", "body": b"hello", "more_body": False}]
    assert result.pulled == 2
    assert result.closes == 1


# -- B12, B13 ----------------------------------------------------------------------


async def test_start_response_never_called_is_500(caplog: pytest.LogCaptureFixture) -> None:  # B12
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        return [b"body"]

    with caplog.at_level(logging.ERROR, logger="bridge"):
        peer = await call(app)
    assert peer.status == 500
    assert peer.sent[-1]["more_body"] is False
    assert any(r.name == "bridge" and r.exc_info for r in caplog.records)


async def test_generator_that_never_starts_is_500(caplog: pytest.LogCaptureFixture) -> None:  # B12
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        yield from ()

    with caplog.at_level(logging.ERROR, logger="bridge"):
        peer = await call(app)
    assert peer.status == 500


async def test_write_precedes_the_iterable() -> None:  # B13
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"first ")
        write(b"second ")
        return [b"third"]

    peer = await call(validated(app))
    assert peer.body == b"first second third"
    assert b"content-length" not in peer.headers  # B16: not with write()
    assert peer.sent[-1]["more_body"] is False


async def test_write_before_start_response_is_500(caplog: pytest.LogCaptureFixture) -> None:  # B13
    captured: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", TEXT)
        try:
            write("text")  # type: ignore[arg-type]
        except AppProtocolError as exc:
            captured.append(exc)
        return []

    await call(app)
    assert captured

    class Sneaky:
        def __call__(self, environ: Environ, start_response: Any) -> list[bytes]:
            start_response.write(b"early")
            return []

    with caplog.at_level(logging.ERROR, logger="bridge"):
        peer = await call(Sneaky())
    assert peer.status == 500


# -- B14, B15 -----------------------------------------------------------------------


async def test_body_truncated_at_content_length_and_iteration_stops() -> None:  # B14, B15
    result = Result([b"abc", b"defgh", b"never"])
    peer = await call(app_returning(result, headers=[*TEXT, ("Content-Length", "5")]))
    assert peer.body == b"abcde"
    assert peer.sent[-1]["more_body"] is False
    assert result.pulled == 2
    assert result.closes == 1


async def test_list_truncated_at_content_length() -> None:  # B14
    peer = await call(app_returning([b"abc", b"defgh"], headers=[*TEXT, ("Content-Length", "4")]))
    assert peer.body == b"abcd"
    assert peer.sent[-1]["more_body"] is False


@pytest.mark.parametrize("shape", ["list", "generator"])
async def test_short_body_aborts(shape: str, caplog: pytest.LogCaptureFixture) -> None:  # B14
    result: Any = [b"abc"] if shape == "list" else Result([b"abc", b"d"])
    with caplog.at_level(logging.ERROR, logger="bridge"), pytest.raises(AppProtocolError):
        await call(app_returning(result, headers=[*TEXT, ("Content-Length", "10")]))
    assert any("shorter" in r.getMessage() for r in caplog.records)


async def test_short_body_never_fakes_completion() -> None:  # B14
    peer = Peer()
    with pytest.raises(AppProtocolError):
        await call(app_returning(Result([b"abc"]), headers=[*TEXT, ("Content-Length", "10")]), peer)
    assert all(m.get("more_body", True) for m in peer.bodies)


# -- B17 ----------------------------------------------------------------------------


async def test_exception_before_headers_is_500_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:  # B17
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="bridge"):
        peer = await call(app)
    assert peer.status == 500
    assert peer.body == b"Internal Server Error"
    records = [r for r in caplog.records if r.name == "bridge"]
    assert records
    assert records[0].exc_info
    assert records[0].exc_info[0] is ValueError


async def test_exception_in_iteration_before_body_is_500(
    caplog: pytest.LogCaptureFixture,
) -> None:  # B17
    result = Result(())

    def boom() -> Iterator[bytes]:
        yield from ()
        raise ValueError("boom")

    result.chunks = boom()
    with caplog.at_level(logging.ERROR, logger="bridge"):
        peer = await call(app_returning(result))
    assert peer.status == 500
    assert result.closes == 1


async def test_exception_after_headers_is_reraised_after_close() -> None:  # B15, B17
    error = ValueError("late")

    def chunks() -> Iterator[bytes]:
        yield b"a"
        yield b"b"
        raise error

    result = Result(chunks())
    peer = Peer()
    with pytest.raises(ValueError, match="late") as raised:
        await call(app_returning(result), peer)
    assert raised.value is error
    assert result.closes == 1
    assert peer.body == b"ab"
    assert all(m["more_body"] for m in peer.bodies)


async def test_exception_after_write_is_reraised() -> None:  # B17
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"partial")
        raise KeyError("late")

    with pytest.raises(KeyError):
        await call(app)


async def test_error_handler_may_replace_headers_before_they_are_sent() -> None:  # B5
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [*TEXT, ("Content-Length", "100")])
        try:
            raise RuntimeError("oops")
        except RuntimeError:
            import sys

            start_response("503 Service Unavailable", TEXT, sys.exc_info())
        return [b"sorry"]

    peer = await call(validated(app))
    assert peer.status == 503
    assert peer.body == b"sorry"


async def test_exc_info_after_headers_sent_reraises_through_the_app() -> None:  # B6
    original = LookupError("first")

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"sent")
        try:
            raise original
        except LookupError:
            import sys

            start_response("500 Oops", TEXT, sys.exc_info())
        return []

    with pytest.raises(LookupError) as raised:
        await call(app)
    assert raised.value is original


async def test_invalid_status_from_app_is_500(caplog: pytest.LogCaptureFixture) -> None:  # B3
    with caplog.at_level(logging.ERROR, logger="bridge"):
        peer = await call(app_returning([b"x"], status="200"))
    assert peer.status == 500
    with caplog.at_level(logging.ERROR, logger="bridge"):
        peer = await call(app_returning([b"x"], headers=[("Connection", "close")]))
    assert peer.status == 500  # B9


async def test_non_bytes_chunk_is_500(caplog: pytest.LogCaptureFixture) -> None:  # B3 / PEP 3333
    with caplog.at_level(logging.ERROR, logger="bridge"):
        peer = await call(app_returning(["text"]))
    assert peer.status == 500


# -- B18 ------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "status"), [("HEAD", "200 OK"), ("GET", "304 Not Modified")])
async def test_bodiless_responses_pass_through(method: str, status: str) -> None:  # B18
    headers = (
        [("Content-Length", "42")]
        if status.startswith("304")
        else [*TEXT, ("Content-Length", "42")]
    )
    peer = await call(app_returning([], status=status, headers=headers), method=method)
    assert peer.headers[b"content-length"] == b"42"
    assert list(peer.headers).count(b"content-length") == 1
    assert peer.bodies == [END]


async def test_head_does_not_get_a_computed_content_length() -> None:  # B18
    peer = await call(app_returning([b"abc"]), method="HEAD")
    assert b"content-length" not in peer.headers


# -- B19, cancellation, backpressure ------------------------------------------------------


def endless(result_holder: list[Result]) -> WSGIApp:
    def app(environ: Environ, start_response: StartResponse) -> Result:
        start_response("200 OK", TEXT)

        def forever() -> Iterator[bytes]:
            while True:
                yield b"tick"

        result = Result(forever())
        result_holder.append(result)
        return result

    return app


async def test_send_oserror_stops_iteration_and_is_swallowed() -> None:  # B19
    holder: list[Result] = []
    peer = Peer()

    def on_send(message: Message) -> None:
        if len(peer.bodies) == 3:
            raise ClientDisconnected("gone")

    peer.on_send = on_send
    await call(endless(holder), peer)
    assert holder[0].closes == 1
    assert len(peer.bodies) == 3


async def test_send_oserror_on_first_chunk() -> None:  # B19
    holder: list[Result] = []
    peer = Peer()

    def on_send(message: Message) -> None:
        raise OSError("broken pipe")

    peer.on_send = on_send
    await call(endless(holder), peer)
    assert holder[0].closes == 1


async def test_send_oserror_on_list_response() -> None:  # B19
    peer = Peer()

    def on_send(message: Message) -> None:
        raise OSError("broken pipe")

    peer.on_send = on_send
    result = Result([b"x"])
    await call(app_returning(result), peer)
    assert result.closes == 1


async def test_http_disconnect_while_streaming_stops_the_worker() -> None:  # B19
    holder: list[Result] = []
    peer = Peer()

    def on_send(message: Message) -> None:
        if len(peer.bodies) == 2:
            peer.disconnect.set()  # the watcher's receive() now returns http.disconnect

    peer.on_send = on_send
    await call(endless(holder), peer)
    assert holder[0].closes == 1
    assert peer.sent[-1]["more_body"] is True


async def test_the_disconnect_watcher_ends_with_the_response() -> None:  # B19
    # A streamed response starts the watcher, whose receive() waits for a
    # disconnect that never comes; once the response is over, that receive()
    # has been cancelled and has returned: no task outlives the request.
    waiting = threading.Event()
    ended: list[str] = []

    class QuietPeer(Peer):
        async def receive(self) -> Message:
            if self.incoming:
                return self.incoming.pop(0)
            waiting.set()
            try:
                await anyio.sleep_forever()
            finally:
                ended.append("receive")
            raise AssertionError("unreachable")

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)

        def until_watched() -> Iterator[bytes]:
            # Stream until the watcher waits in receive() (it starts with the
            # second chunk), never blocking: the greenlet runs on the loop.
            for _ in range(100_000):
                yield b"x"
                if waiting.is_set():
                    return

        return until_watched()

    peer = await call(app, QuietPeer())
    assert waiting.is_set()
    assert ended == ["receive"]
    assert peer.sent[-1]["more_body"] is False  # the response completed


async def test_a_stream_whose_send_never_suspends_lets_other_tasks_run() -> None:
    # The peer's send() returns without suspending; a task waiting for the
    # third body must still run while the endless stream goes on, and its
    # disconnect then ends the stream.
    holder: list[Result] = []
    peer = Peer()
    streaming = anyio.Event()

    def on_send(message: Message) -> None:
        if len(peer.bodies) == 3:
            streaming.set()

    async def other() -> None:
        await streaming.wait()
        peer.disconnect.set()

    peer.on_send = on_send
    async with anyio.create_task_group() as group:
        group.start_soon(call, endless(holder), peer)
        group.start_soon(other)
    assert holder[0].closes == 1


def peer_stuck_after_two_bodies() -> tuple[Peer, anyio.Event]:
    """A peer whose send() hangs once two body messages arrived, and the event set then."""
    peer = Peer()
    blocked = anyio.Event()

    async def on_send(message: Message) -> None:
        if len(peer.bodies) == 2:
            blocked.set()
            await anyio.sleep_forever()

    peer.on_send = lambda m: on_send(m)
    return peer, blocked


async def test_cancellation_wakes_the_worker_and_closes_once() -> None:  # B15, never hang
    holder: list[Result] = []
    peer, blocked = peer_stuck_after_two_bodies()
    served = adapter(endless(holder), max_threads=1)
    async with anyio.create_task_group() as group:
        group.start_soon(served, http_scope(), peer.receive, peer.send)
        await blocked.wait()
        group.cancel_scope.cancel()
    # The worker has returned (close ran) before the request task ended...
    assert holder[0].closes == 1
    # ...and its thread token is free again: the single thread serves the next one.
    second = Peer()

    def hang_up(message: Message) -> None:
        if message["type"] == "http.response.body":
            raise ClientDisconnected("gone")

    second.on_send = hang_up
    with anyio.fail_after(10):
        await served(http_scope(), second.receive, second.send)
    assert holder[1].closes == 1


async def test_a_disconnect_cancels_a_send_stuck_in_flight() -> None:  # B19, never hang
    # send() hangs on the second body, as on a server that notices the
    # client has gone only later; the http.disconnect that arrives meanwhile
    # cancels that send, and the app is stopped and closed once.
    holder: list[Result] = []
    peer, blocked = peer_stuck_after_two_bodies()

    async def disconnect_once_blocked() -> None:
        await blocked.wait()
        peer.disconnect.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(call, endless(holder), peer)
            group.start_soon(disconnect_once_blocked)
    assert holder[0].closes == 1


async def test_cancellation_during_phase_one_write() -> None:  # never hang
    peer = Peer()
    blocked = anyio.Event()
    closed: list[int] = []

    async def on_send(message: Message) -> None:
        if message["type"] == "http.response.body":
            blocked.set()
            await anyio.sleep_forever()

    peer.on_send = lambda m: on_send(m)

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", TEXT)
        try:
            while True:
                write(b"x")
        finally:
            closed.append(1)

    async with anyio.create_task_group() as group:
        group.start_soon(adapter(app), http_scope(), peer.receive, peer.send)
        await blocked.wait()
        group.cancel_scope.cancel()
    assert closed == [1]


@greenlet_only
async def test_greenlet_backpressure_one_chunk_in_flight() -> None:  # B10
    produced = 0
    peer = Peer()
    observations: list[tuple[int, int]] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        nonlocal produced
        start_response("200 OK", TEXT)
        for _ in range(5):
            produced += 1
            yield b"chunk"

    async def slow_send(message: Message) -> None:
        if message["type"] == "http.response.body" and message["more_body"]:
            # While send() has not returned, the worker must not run ahead.
            observations.append((produced, len(peer.bodies)))
            gate = anyio.Event()
            gate.set()
            await gate.wait()
            await anyio.lowlevel.checkpoint()

    peer.on_send = lambda m: slow_send(m)
    await call(validated(app), peer)
    # One chunk in flight: while send() runs, the app has produced exactly it.
    assert observations == [(n, n) for n in range(1, 6)]
    assert peer.body == b"chunk" * 5


@thread_only
async def test_thread_send_buffer_bounds_what_runs_ahead() -> None:  # B10, issue 4
    chunk_size, count, limit = 4096, 64, 16384
    produced = 0
    sent = 0
    ahead: list[int] = []
    peer = Peer()

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        nonlocal produced
        start_response("200 OK", TEXT)
        for i in range(count):
            ahead.append(produced - sent)  # produced but not yet sent, at each pull
            produced += chunk_size
            yield bytes([i]) * chunk_size

    async def slow_send(message: Message) -> None:
        nonlocal sent
        await anyio.lowlevel.checkpoint()  # let the worker run ahead if it may
        sent += len(message.get("body", b""))

    peer.on_send = lambda m: slow_send(m)
    await adapter(app, send_buffer=limit)(http_scope(), peer.receive, peer.send)
    assert peer.body == b"".join(bytes([i]) * chunk_size for i in range(count))  # order
    assert max(ahead) <= limit + chunk_size  # bounded memory
    assert all(len(m["body"]) <= limit for m in peer.bodies)  # bounded coalescing
    assert peer.bodies[-1]["more_body"] is False
    assert all(m["more_body"] for m in peer.bodies[:-1])


@thread_only
async def test_thread_first_chunk_goes_out_while_the_app_blocks() -> None:  # B10: never held
    peer = Peer()
    first_sent = anyio.Event()
    release = threading.Event()
    peer.on_send = lambda m: first_sent.set() if m.get("body") == b"first" else None

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b"first"
        assert release.wait(30)  # the app blocks before producing the next chunk
        yield b"second"

    async with anyio.create_task_group() as group:
        group.start_soon(call, app, peer)
        with anyio.fail_after(30):
            await first_sent.wait()
        release.set()
    assert peer.body == b"firstsecond"


@thread_only
async def test_thread_send_buffer_zero_sends_each_chunk_alone() -> None:  # B10
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b"a"
        yield b"b"

    peer = Peer()
    await adapter(app, send_buffer=0)(http_scope(), peer.receive, peer.send)
    assert peer.bodies == [
        {"type": "http.response.body", "body": b"a", "more_body": True},
        {"type": "http.response.body", "body": b"b", "more_body": True},
        END,
    ]


async def test_send_raising_wakes_a_blocked_app() -> None:  # never hang, B15
    holder: list[Result] = []
    peer = Peer()
    error = RuntimeError("server broke")

    def on_send(message: Message) -> None:
        if len(peer.bodies) == 2:
            raise error

    peer.on_send = on_send
    with pytest.raises(RuntimeError) as raised:
        await adapter(endless(holder), send_buffer=16)(http_scope(), peer.receive, peer.send)
    assert raised.value is error
    assert holder[0].closes == 1


async def test_contextvars_reach_the_app() -> None:  # B1 (anyio copies the context)
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
    var.set("from the server task")
    seen: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(var.get())
        start_response("200 OK", TEXT)
        return []

    await call(app)
    assert seen == ["from the server task"]


# -- request bodies (D3, A22, A25) -----------------------------------------------------


def echo_app(seen: list[Environ] | None = None) -> WSGIApp:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        if seen is not None:
            seen.append(environ)
        body = environ["wsgi.input"].read(-1)  # wsgiref.validate: exactly one argument
        start_response("200 OK", TEXT)
        return [hashlib.sha256(body).hexdigest().encode(), b" %d" % len(body)]

    return app


def chunked(data: bytes, size: int) -> list[Message]:
    messages: list[Message] = [
        {"type": "http.request", "body": data[i : i + size], "more_body": True}
        for i in range(0, len(data), size)
    ]
    messages.append({"type": "http.request", "body": b"", "more_body": False})
    return messages


@pytest.mark.parametrize("stream", [False, True], ids=["pre-read", "lazy"])
async def test_chunked_upload_arrives_whole(stream: bool) -> None:  # D3, A25
    data = b"0123456789" * 1000
    seen: list[Environ] = []
    peer = Peer([*chunked(data, 777)[:-1], {"type": "http.request", "body": b"tail"}])
    served = adapter(validated(echo_app(seen)), stream_request_body=stream)
    await served(http_scope(method="POST"), peer.receive, peer.send)
    full = data + b"tail"
    assert peer.body == hashlib.sha256(full).hexdigest().encode() + b" %d" % len(full)
    assert "CONTENT_LENGTH" not in seen[0]
    assert seen[0]["wsgi.input_terminated"] is True


async def test_missing_body_keys_default() -> None:  # D3
    peer = Peer(
        [{"type": "http.request", "more_body": True}, {"type": "http.request", "body": b"x"}]
    )
    await call(echo_app(), peer, method="POST")
    assert peer.body.endswith(b" 1")


async def test_unexpected_message_while_reading_body_raises() -> None:  # D3
    peer = Peer([{"type": "websocket.receive"}])
    with pytest.raises(ServerProtocolError):
        await call(echo_app(), peer, method="POST")


async def test_disconnect_during_pre_read_does_not_call_the_app() -> None:  # D3
    called: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        called.append(1)
        return []

    peer = Peer(
        [{"type": "http.request", "body": b"x", "more_body": True}, {"type": "http.disconnect"}]
    )
    await call(app, peer, method="POST")
    assert called == []
    assert peer.sent == []


async def test_lazy_input_disconnect_raises_client_disconnected() -> None:  # A22 R, B19
    errors: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except OSError as exc:
            errors.append(exc)
            raise
        return []

    peer = Peer(
        [{"type": "http.request", "body": b"x", "more_body": True}, {"type": "http.disconnect"}]
    )
    await adapter(app, stream_request_body=True)(http_scope(method="POST"), peer.receive, peer.send)
    assert len(errors) == 1
    assert isinstance(errors[0], ClientDisconnected)
    assert peer.sent == []


async def test_lazy_input_is_lazy() -> None:  # A22
    peer = Peer(chunked(b"abcdef", 2))

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        first = environ["wsgi.input"].read(2)
        calls = peer.receive_calls
        start_response("200 OK", TEXT)
        return [first, b" %d" % calls]

    await adapter(app, stream_request_body=True)(http_scope(method="POST"), peer.receive, peer.send)
    assert peer.body == b"ab 1"


async def test_large_upload_spills_to_a_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    data = bytes(range(256)) * (20 * 1024 * 1024 // 256)  # 20 MiB
    inputs: list[Any] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        stream = environ["wsgi.input"]
        inputs.append(stream.input)  # under wsgiref.validate's InputWrapper
        digest = hashlib.sha256()
        while block := stream.read(65536):
            digest.update(block)
        start_response("200 OK", TEXT)
        return [digest.hexdigest().encode(), b" %r" % isinstance(stream.input, io.BytesIO)]

    peer = Peer(chunked(data, 65536))
    headers = [(b"content-length", str(len(data)).encode())]
    await call(validated(app), peer, method="POST", headers=headers)
    assert peer.body == hashlib.sha256(data).hexdigest().encode() + b" False"
    assert inputs[0].closed  # closed (and deleted) once the request is over
    assert [entry async for entry in anyio.Path(tmp_path).iterdir()] == []


async def test_upload_cut_short_leaves_no_temp_file(monkeypatch: pytest.MonkeyPatch) -> None:
    # Never lose a request, nor keep what it held: the client leaves after
    # 3 MiB of a declared 20 MiB, past the memory bound, so the pre-read has
    # spilled to a temp file, which must be closed. (On POSIX it has no name
    # in any directory to look for: count what was opened instead.)
    opened: list[Any] = []
    make_temp_file = tempfile.TemporaryFile

    def recording(*args: Any, **kwargs: Any) -> Any:
        temp_file = make_temp_file(*args, **kwargs)
        opened.append(temp_file)
        return temp_file

    monkeypatch.setattr(tempfile, "TemporaryFile", recording)
    called: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        called.append(1)
        start_response("200 OK", TEXT)
        return []

    piece = {"type": "http.request", "body": b"u" * 65536, "more_body": True}
    peer = Peer([*[piece] * 48, {"type": "http.disconnect"}])
    headers = [(b"content-length", str(20 * 1024 * 1024).encode())]
    await call(app, peer, method="POST", headers=headers)
    assert called == []  # a disconnect during the pre-read: the app is not called
    assert len(opened) == 1
    assert opened[0].closed


async def test_small_body_stays_in_memory() -> None:
    peer = Peer([{"type": "http.request", "body": b"small"}])
    seen: list[Environ] = []
    await call(echo_app(seen), peer, method="POST")
    assert isinstance(seen[0]["wsgi.input"], io.BytesIO)


@pytest.mark.parametrize("stream", [False, True], ids=["pre-read", "lazy"])
@pytest.mark.parametrize("announced", [True, False], ids=["content-length", "chunked"])
async def test_max_body_size_is_413(stream: bool, announced: bool) -> None:
    called: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        called.append(1)
        environ["wsgi.input"].read()
        start_response("200 OK", TEXT)
        return []

    data = b"x" * 100
    headers = [(b"content-length", b"100")] if announced else []
    peer = Peer(chunked(data, 30))
    served = adapter(app, max_body_size=50, stream_request_body=stream)
    await served(http_scope(method="POST", headers=headers), peer.receive, peer.send)
    assert peer.status == 413
    if announced or not stream:
        assert called == []


async def test_invalid_content_length_is_400() -> None:  # A11
    peer = await call(app_returning([]), headers=[(b"content-length", b"nope")])
    assert peer.status == 400


# -- other scopes (B20) ------------------------------------------------------------------


async def test_lifespan_runs_hooks_in_a_worker_thread() -> None:  # B20 (both executors)
    threads: list[int] = []
    served = adapter(
        app_returning([]),
        on_startup=lambda: threads.append(threading.get_ident()),
        on_shutdown=lambda: threads.append(threading.get_ident()),
    )
    peer = Peer([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    await served({"type": "lifespan", "asgi": {"version": "3.0"}}, peer.receive, peer.send)
    assert peer.sent == [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.complete"},
    ]
    assert len(threads) == 2
    assert threading.get_ident() not in threads


async def test_lifespan_without_hooks() -> None:  # B20
    peer = Peer([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    await adapter(app_returning([]))({"type": "lifespan"}, peer.receive, peer.send)
    assert [m["type"] for m in peer.sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]


async def test_lifespan_hook_failures(caplog: pytest.LogCaptureFixture) -> None:  # B20
    def fail() -> None:
        raise RuntimeError("database down")

    peer = Peer([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    with caplog.at_level(logging.ERROR, logger="bridge"):
        await adapter(app_returning([]), on_startup=fail, on_shutdown=fail)(
            {"type": "lifespan"}, peer.receive, peer.send
        )
    assert peer.sent == [
        {"type": "lifespan.startup.failed", "message": "database down"},
        {"type": "lifespan.shutdown.failed", "message": "database down"},
    ]


async def test_websocket_is_refused() -> None:  # B20
    peer = Peer([{"type": "websocket.connect"}])
    await adapter(app_returning([]))(
        {"type": "websocket", "path": "/", "headers": []}, peer.receive, peer.send
    )
    assert peer.sent == [{"type": "websocket.close", "code": 1008, "reason": ""}]


async def test_unknown_scope_type_raises() -> None:  # B20
    peer = Peer()
    with pytest.raises(ServerProtocolError):
        await adapter(app_returning([]))({"type": "mqtt"}, peer.receive, peer.send)


def test_constructor_validation() -> None:
    app = app_returning([])
    assert WsgiToAsgi(app).max_threads == 40
    with pytest.raises(ValueError, match="executor"):
        WsgiToAsgi(app, executor="process")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_threads"):
        WsgiToAsgi(app, max_threads=0)
    with pytest.raises(ValueError, match="max_body_size"):
        WsgiToAsgi(app, max_body_size=-1)


# -- wsgi.file_wrapper (A26) -------------------------------------------------------------


def file_app(path: Path, seek: int = 0, headers: Any = None) -> WSGIApp:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        handle = path.open("rb")
        handle.seek(seek)
        start_response("200 OK", TEXT if headers is None else headers)
        return environ["wsgi.file_wrapper"](handle, 4)  # type: ignore[no-any-return]

    return app


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(b"0123456789")
    return path


async def test_file_wrapper_streams_without_extensions(data_file: Path) -> None:  # A26
    peer = await call(validated(file_app(data_file, seek=2)))
    assert peer.body == b"23456789"
    assert peer.bodies[-1]["more_body"] is False
    if on_greenlet():
        assert [m["body"] for m in peer.bodies] == [b"2345", b"6789", b""]


async def test_file_wrapper_uses_pathsend(data_file: Path) -> None:  # A26, D12
    extensions: dict[str, Any] = {"http.response.pathsend": {}}
    peer = await call(file_app(data_file), extensions=extensions)
    assert peer.headers[b"content-length"] == b"10"
    assert peer.sent[1:] == [{"type": "http.response.pathsend", "path": str(data_file)}]


async def test_file_wrapper_uses_zerocopysend(data_file: Path) -> None:  # A26, D13
    extensions: dict[str, Any] = {"http.response.pathsend": {}, "http.response.zerocopysend": {}}
    files: list[Any] = []

    async def on_send(message: Message) -> None:
        if message["type"] == "http.response.zerocopysend":
            files.append(message["file"])
            assert not message["file"].closed

    peer = Peer()
    peer.on_send = lambda m: on_send(m)
    await call(file_app(data_file, seek=3), peer, extensions=extensions)
    message = peer.sent[1]
    assert message["type"] == "http.response.zerocopysend"
    assert (message["offset"], message["count"], message["more_body"]) == (3, 7, False)
    assert files[0].closed  # closed by us once sent
    assert peer.headers[b"content-length"] == b"7"


async def test_file_wrapper_short_file_is_streamed(data_file: Path) -> None:  # A26, B14
    extensions: dict[str, Any] = {"http.response.pathsend": {}}
    with pytest.raises(AppProtocolError):
        await call(
            file_app(data_file, headers=[*TEXT, ("Content-Length", "20")]), extensions=extensions
        )


# -- real frameworks through httpx.ASGITransport ------------------------------------------


async def test_flask_app() -> None:
    import flask

    flask_app = flask.Flask("bridge_test")

    @flask_app.route("/hello/<name>")
    def hello(name: str) -> str:
        return f"hello {name} {flask.request.args.get('q', '')}"

    @flask_app.post("/echo")
    def echo() -> flask.Response:
        return flask.Response(flask.request.get_data(), mimetype="application/octet-stream")

    @flask_app.route("/stream")
    def stream() -> flask.Response:
        return flask.Response((b"part%d;" % i for i in range(3)), mimetype="text/plain")

    transport = httpx.ASGITransport(app=adapter(flask_app))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/hello/w%C3%B6rld", params={"q": "1"})
        assert response.status_code == 200
        assert response.text == "hello wörld 1"
        response = await client.post("/echo", content=b"x" * 100_000)
        assert response.content == b"x" * 100_000
        response = await client.get("/stream")
        assert response.text == "part0;part1;part2;"
        response = await client.get("/missing")
        assert response.status_code == 404


async def test_django_app() -> None:
    import django  # type: ignore[import-untyped]
    from django.conf import settings  # type: ignore[import-untyped]

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            ALLOWED_HOSTS=["testserver"],
            ROOT_URLCONF=__name__,
            SECRET_KEY="test-only",
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            USE_TZ=True,
        )
        django.setup()
    from django.core.wsgi import get_wsgi_application  # type: ignore[import-untyped]

    transport = httpx.ASGITransport(app=adapter(get_wsgi_application()))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/hi/", params={"name": "dj"}, headers={"cookie": "a=1"})
        assert response.status_code == 200
        assert response.text == "hi dj /hi/ a=1"
        response = await client.post("/hi/", content=b"payload")
        assert response.text == "posted payload"


def _django_view(request: Any) -> Any:
    from django.http import HttpResponse  # type: ignore[import-untyped]

    if request.method == "POST":
        return HttpResponse(b"posted " + request.body)
    cookie = request.COOKIES.get("a", "")
    return HttpResponse(f"hi {request.GET['name']} {request.path} a={cookie}")


def _django_urls() -> list[Any]:
    try:
        from django.urls import path  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover
        return []
    return [path("hi/", _django_view)]


urlpatterns = _django_urls()


def test_one_adapter_serves_successive_event_loops() -> None:
    # A module-level adapter outlives event loops (tests on both backends, a
    # server restarted in-process): its thread limiter must follow the loop.
    def hello(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    served = adapter(hello, max_threads=2)

    async def once() -> Peer:
        peer = Peer()
        await served(http_scope(), peer.receive, peer.send)
        return peer

    for backend in ("asyncio", "trio", "asyncio"):
        peer = anyio.run(once, backend=backend)
        assert (peer.status, peer.body) == (200, b"hello")


# -- greenlet executor specifics ----------------------------------------------------------


def greenlet_endless(greenlets: list[Any], holder: list[Result]) -> WSGIApp:
    inner = endless(holder)

    def app(environ: Environ, start_response: StartResponse) -> Any:
        import greenlet

        greenlets.append(greenlet.getcurrent())
        return inner(environ, start_response)

    return app


@greenlet_only
async def test_greenlet_job_ends_on_cancellation() -> None:  # B15, never half-run
    greenlets: list[Any] = []
    holder: list[Result] = []
    peer, blocked = peer_stuck_after_two_bodies()
    async with anyio.create_task_group() as group:
        group.start_soon(call, greenlet_endless(greenlets, holder), peer)
        await blocked.wait()
        group.cancel_scope.cancel()
    # No gc needed: the job ended in the cancelled task; its runner is idle again.
    assert not greenlets[0].busy
    assert holder[0].closes == 1
    assert holder[0].close_thread == threading.get_ident()


@greenlet_only
async def test_greenlet_job_ends_on_disconnect() -> None:  # B19
    # The peer drops what is sent at no cost, as servers do once the client
    # is gone: the stream must still stop within a yield or two to the loop
    # (one per CHECKPOINT_CHUNKS of these tiny chunks), not run on for as long
    # as it takes to notice (rule 4 of bridge.wsgi_greenlet). Here the client
    # leaves before the disconnect watcher has first run: it needs two steps
    # (start, then see the disconnect), one per yield on asyncio; trio runs
    # each batch's tasks in random order, so its steps may come one yield later.
    greenlets: list[Any] = []
    holder: list[Result] = []
    peer = Peer()

    def on_send(message: Message) -> None:
        if len(peer.bodies) == 3:
            peer.disconnect.set()

    peer.on_send = on_send
    await call(greenlet_endless(greenlets, holder), peer)
    assert not greenlets[0].busy
    assert holder[0].closes == 1
    assert len(peer.bodies) <= 3 + 3 * CHECKPOINT_CHUNKS


@greenlet_only
@pytest.mark.parametrize(
    ("chunk_size", "chunks_per_yield"),
    [
        (4, CHECKPOINT_CHUNKS),
        (4096, CHECKPOINT_CHUNKS),
        (CHECKPOINT_BYTES, 1),
        (20_000, -(-CHECKPOINT_BYTES // 20_000)),  # the chunk that reaches the bound
    ],
)
async def test_greenlet_stream_yields_to_the_loop(chunk_size: int, chunks_per_yield: int) -> None:
    # Rule 4 of bridge.wsgi_greenlet: the peer's send() never suspends, yet
    # another task must run once per CHECKPOINT_CHUNKS chunks or
    # CHECKPOINT_BYTES bytes, whichever comes first (and not at every chunk:
    # a yield costs as much as a small chunk's crossing).
    total = 64
    passes = 0
    seen: list[int] = []
    stop = anyio.Event()

    async def other_task() -> None:
        nonlocal passes
        while not stop.is_set():
            passes += 1
            await anyio.lowlevel.checkpoint()

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        return (b"x" * chunk_size for _ in range(total))

    peer = Peer()

    def on_send(message: Message) -> None:
        if message["type"] == "http.response.body" and message.get("more_body"):
            seen.append(passes)

    peer.on_send = on_send
    async with anyio.create_task_group() as group:
        group.start_soon(other_task)
        await anyio.lowlevel.checkpoint()  # let it start
        await call(app, peer)
        stop.set()
    assert len(seen) == total
    # The yields start with the disconnect watcher, at the second chunk.
    streamed = seen[1:]
    yields = (len(streamed) - 1) // chunks_per_yield
    # Not at every chunk (unless each is worth a yield) ...
    assert yields - 2 <= streamed[-1] - streamed[0] <= yields + 2, seen
    # ... yet never long without one. trio runs the tasks of each scheduling
    # batch in random order, so the other task may run right before one
    # yield and right after the next: two yields' worth of chunks apart.
    longest = max(sum(1 for _ in run) for _, run in itertools.groupby(streamed))
    assert longest <= 2 * chunks_per_yield, seen


@greenlet_only
async def test_greenlet_runners_are_reused() -> None:
    # A fresh greenlet costs more than the rest of a small request: one idle
    # runner serves request after request.
    seen: list[Any] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        import greenlet

        seen.append(greenlet.getcurrent())
        start_response("200 OK", TEXT)
        return [b"ok"]

    served = adapter(app)
    for _ in range(3):
        peer = Peer()
        await served(http_scope(), peer.receive, peer.send)
        assert peer.body == b"ok"
    assert seen[0] is seen[1] is seen[2]


@greenlet_only
async def test_greenlet_runner_keeps_nothing_of_a_failed_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # B17
    # pytest's log capture would keep the logged traceback, and with it the frame.
    monkeypatch.setattr(logging.getLogger("bridge"), "propagate", False)

    class Marker:
        pass

    refs: list[weakref.ref[Marker]] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        marker = Marker()  # a local of the failing frame
        refs.append(weakref.ref(marker))
        raise ValueError("boom")

    peer = await call(app)
    assert peer.status == 500
    gc.collect()  # cycles through the traceback are fine; a live reference is not
    assert refs[0]() is None, "the idle runner still holds the failed request's frames"


@greenlet_only
async def test_greenlet_context_is_a_copy() -> None:  # B1
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
    var.set("server")
    seen: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(var.get())
        var.set("app")  # stays in the request's copy
        start_response("200 OK", TEXT)
        return []

    await call(app)
    await call(app)
    assert seen == ["server", "server"]
    assert var.get() == "server"


@greenlet_only
async def test_greenlet_lazy_input_switches_to_the_loop() -> None:  # A22
    peer = Peer(chunked(b"abcdef", 2))
    threads: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        threads.append(threading.get_ident())
        body = environ["wsgi.input"].read()
        start_response("200 OK", TEXT)
        return [body]

    await adapter(app, stream_request_body=True)(http_scope(method="POST"), peer.receive, peer.send)
    assert peer.body == b"abcdef"
    assert threads == [threading.get_ident()]


# -- garbage -------------------------------------------------------------------------


def _streamed(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    environ["wsgi.input"].read()
    start_response("200 OK", TEXT)
    for _ in range(20):
        yield b"x" * 4096


@pytest.mark.parametrize(
    "options",
    [{}, {"body_buffer_size": 1000}, {"stream_request_body": True}],
    ids=["in-memory", "spilled", "lazy"],
)
async def test_a_request_leaves_no_reference_cycles(options: dict[str, Any]) -> None:
    # Garbage in a cycle outlives the request until the collector runs, and the
    # collector's passes cost every request of the process: a request served
    # to the end must free all it made by reference counting alone.
    served = adapter(_streamed, **options)
    upload = chunked(b"u" * 10_000, 1000)
    await served(http_scope(method="POST"), Peer(upload).receive, Peer().send)  # warm-up
    with NewCycles() as cycles:
        for _ in range(3):
            peer = Peer(upload)
            await served(http_scope(method="POST"), peer.receive, peer.send)
            assert len(peer.body) == 20 * 4096
        del peer
    assert cycles.found == 0, f"{cycles.found} objects were only freed by the cycle collector"
