"""The benchmark's bare adapters: the least an adapter can do, still a correct exchange."""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from bridge.types import Message, Receive, Scope, Send
from compat_suite.bare import BareAsgiInWsgi, bare_wsgi_in_asgi


@pytest.mark.anyio
async def test_bare_wsgi_in_asgi_builds_the_environ_and_answers_in_two_messages() -> None:
    seen: dict[str, object] = {}

    def app(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
        seen.update(environ)
        body = environ["wsgi.input"].read()  # type: ignore[attr-defined]
        start_response("201 Created", [("Content-Type", "text/plain"), ("X-Seen", "yes")])
        return [b"got ", body]

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "root_path": "/app",
        "path": "/app/caf\u00e9",
        "query_string": b"a=1",
        "headers": [
            (b"content-type", b"text/plain"),
            (b"content-length", b"6"),
            (b"accept", b"a"),
            (b"accept", b"b"),
        ],
        "server": ("example.org", 8443),
        "client": ("10.0.0.1", 5000),
    }
    incoming: list[Message] = [
        {"type": "http.request", "body": b"abc", "more_body": True},
        {"type": "http.request", "body": b"def", "more_body": False},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await bare_wsgi_in_asgi(app)(scope, receive, send)

    expected = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "/app",
        "PATH_INFO": "/caf\u00c3\u00a9",  # PEP 3333: the UTF-8 bytes as latin-1
        "QUERY_STRING": "a=1",
        "SERVER_NAME": "example.org",
        "SERVER_PORT": "8443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.1",
        "CONTENT_TYPE": "text/plain",
        "CONTENT_LENGTH": "6",
        "HTTP_ACCEPT": "a,b",
        "wsgi.url_scheme": "https",
    }
    assert {key: seen[key] for key in expected} == expected
    assert sent == [
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"content-type", b"text/plain"), (b"x-seen", b"yes")],
        },
        {"type": "http.response.body", "body": b"got abcdef"},
    ]


def _environ(body: bytes = b"") -> dict[str, object]:
    return {
        "REQUEST_METHOD": "POST" if body else "GET",
        "SCRIPT_NAME": "/app",
        "PATH_INFO": "/caf\u00c3\u00a9",
        "QUERY_STRING": "a=1",
        "SERVER_NAME": "example.org",
        "SERVER_PORT": "8443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.1",
        "REMOTE_PORT": "5000",
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "HTTP_ACCEPT": "*/*",
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
    }


def test_bare_asgi_in_wsgi_runs_the_app_on_its_own_loop_thread() -> None:
    seen: dict[str, object] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.update(scope, thread=threading.current_thread().name)
        request = await receive()
        await send({"type": "http.response.start", "status": 404, "headers": [(b"x-a", b"1")]})
        await send(
            {"type": "http.response.body", "body": b"no " + request["body"], "more_body": True}
        )
        await send({"type": "http.response.body", "body": b"!"})

    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None, /) -> Any:
        started.append((status, headers))

    adapter = BareAsgiInWsgi(app)
    try:
        body = adapter(_environ(b"such"), start_response)
    finally:
        adapter.close()
    assert b"".join(body) == b"no such!"
    assert started == [("404 Not Found", [("x-a", "1")])]
    assert seen["thread"] == "bare-asgi-loop"
    assert {key: seen[key] for key in ("method", "path", "raw_path", "root_path")} == {
        "method": "POST",
        "path": "/app/caf\u00e9",  # ASGI www: the decoded path, root_path included
        "raw_path": b"/app/caf\xc3\xa9",
        "root_path": "/app",
    }
    assert seen["query_string"] == b"a=1"
    assert seen["server"] == ("example.org", 8443)
    assert seen["client"] == ("10.0.0.1", 5000)
    assert sorted(seen["headers"]) == [(b"accept", b"*/*"), (b"content-length", b"4")]  # type: ignore[call-overload]


def _no_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None, /) -> Any:
    raise AssertionError("start_response() called")


def test_bare_asgi_in_wsgi_raises_what_the_app_raised_in_the_server_thread() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise LookupError("broken app")

    adapter = BareAsgiInWsgi(app)
    try:
        with pytest.raises(LookupError, match="broken app"):
            adapter(_environ(), _no_start_response)
    finally:
        adapter.close()
    assert not adapter._thread.is_alive()
