"""Round trips as properties: an app behind both adapters answers like the app alone.

- A WSGI app behind ``AsgiToWsgi(WsgiToAsgi(app))``, called with a generated
  environ, gives the same status code, headers (names case-insensitively),
  body and environ essentials as the app called directly.
- An ASGI app behind ``WsgiToAsgi(AsgiToWsgi(app))``, called with a generated
  scope, gives the same status, headers, body and scope essentials.

In process, no servers; each on both backends (``AsgiToWsgi``'s private loop,
and the loop that drives the outer ``WsgiToAsgi``).
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge import AsgiToWsgi, WsgiToAsgi
from bridge.types import Environ, Message, Receive, Scope, Send, StartResponse
from tests.scopes import http_scope

BACKENDS = ["asyncio", "trio"]
_SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
# x-status and x-chunks are the test's own instructions to the app: never generated.
_header_names = st.lists(
    _token.filter(lambda t: t not in ("status", "chunks")).map(lambda t: "x-" + t),
    unique=True,
    max_size=4,
)
_value = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12
)
_segment = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/?#\ufffd"),
    min_size=1,
    max_size=6,
)
_path = st.lists(_segment, min_size=0, max_size=3).map(lambda parts: "/" + "/".join(parts))
_query = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0xFF,
                                        blacklist_characters="#"), max_size=12)  # fmt: skip
_body = st.binary(max_size=2048)
_statuses = st.sampled_from([200, 201, 202, 400, 404, 418, 500, 503])
_methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"])
_chunks = st.lists(st.binary(min_size=1, max_size=256), max_size=4)


@dataclass(frozen=True)
class Request:
    """One generated request, and the status and extra chunks the app is asked for."""

    method: str
    path: str
    query: str
    names: list[str]  # extra header names ...
    values: list[str]  # ... and values, paired up to the shorter list
    body: bytes
    status: int
    chunks: list[bytes]


_requests = st.builds(
    Request,
    method=_methods,
    path=_path,
    query=_query,
    names=_header_names,
    values=st.lists(_value, min_size=4, max_size=4),
    body=_body,
    status=_statuses,
    chunks=_chunks,
)


def _minus_length(headers: list[tuple[Any, Any]], body: bytes) -> list[tuple[Any, Any]]:
    """``headers`` without a Content-Length the adapters may add (B16), checked first."""
    kept = []
    for name, value in headers:
        if name in ("content-length", b"content-length"):
            assert int(value) == len(body), f"Content-Length {value!r} for {len(body)} bytes"
            continue
        kept.append((name, value))
    return kept


# ------------------------------------------------------------------ WSGI round trip

_ESSENTIALS = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
               "CONTENT_LENGTH", "SERVER_PROTOCOL", "wsgi.url_scheme")  # fmt: skip


def _wsgi_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    seen = {k: environ.get(k) for k in _ESSENTIALS}
    seen["headers"] = {k: v for k, v in environ.items() if k.startswith("HTTP_X_")}
    seen["body"] = body.decode("latin-1")
    status = int(environ.get("HTTP_X_STATUS", "200"))
    chunks = json.loads(environ.get("HTTP_X_CHUNKS", "[]"))
    start_response(f"{status} Whatever", [("Content-Type", "application/json"), ("X-Reply", "1")])
    return [json.dumps(seen).encode(), *(c.encode("latin-1") for c in chunks)]


def _call_wsgi(app: Any, environ: Environ) -> tuple[int, list[tuple[str, str]], bytes]:
    captured: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured[:] = [status, headers]
        return lambda data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = captured
    return int(status.split(" ")[0]), [(k.lower(), v) for k, v in headers], body


@pytest.mark.parametrize("backend", BACKENDS)
@_SETTINGS
@given(case=_requests)
def test_wsgi_app_round_trip(backend: str, case: Request) -> None:
    def environ() -> Environ:
        env: Environ = {
            "REQUEST_METHOD": case.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": case.path.encode("utf-8").decode("latin-1"),
            "QUERY_STRING": case.query,
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "testserver",
            "HTTP_X_STATUS": str(case.status),
            "HTTP_X_CHUNKS": json.dumps([c.decode("latin-1") for c in case.chunks]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(case.body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        if case.body:
            env["CONTENT_LENGTH"] = str(len(case.body))
            env["CONTENT_TYPE"] = "application/octet-stream"
        for name, value in zip(case.names, case.values, strict=False):
            env["HTTP_" + name.upper().replace("-", "_")] = value
        return env

    bridged = AsgiToWsgi(WsgiToAsgi(_wsgi_app), backend=backend, lifespan="off")  # type: ignore[arg-type]
    try:
        direct = _call_wsgi(_wsgi_app, environ())
        through = _call_wsgi(bridged, environ())
    finally:
        bridged.close()
    assert through[0] == direct[0]
    assert _minus_length(through[1], through[2]) == direct[1]
    assert through[2] == direct[2]


# ------------------------------------------------------------------ ASGI round trip


async def _asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = dict(scope["headers"])
    seen = {
        "method": scope["method"],
        "path": scope["path"],
        "root_path": scope.get("root_path", ""),
        "query_string": scope["query_string"].decode("latin-1"),
        "http_version": scope["http_version"],
        "scheme": scope.get("scheme", "http"),
        "headers": sorted(
            [k.decode("latin-1"), v.decode("latin-1")]
            for k, v in scope["headers"]
            if k.startswith(b"x-")
        ),
        "body": body.decode("latin-1"),
    }
    status = int(headers.get(b"x-status", b"200"))
    chunks = json.loads(headers.get(b"x-chunks", b"[]"))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"x-reply", b"1")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(seen).encode(), "more_body": True})
    for chunk in chunks:
        await send(
            {"type": "http.response.body", "body": chunk.encode("latin-1"), "more_body": True}
        )
    await send({"type": "http.response.body", "body": b""})


async def _call_asgi(app: Any, scope: Scope, body: bytes) -> tuple[int, list[Any], bytes]:
    sent: list[Message] = []
    requests = [{"type": "http.request", "body": body, "more_body": False}]
    done = anyio.Event()

    async def receive() -> Message:
        if requests:
            return requests.pop(0)
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers = [(bytes(k).lower(), bytes(v)) for k, v in start.get("headers", [])]
    return start["status"], headers, payload


@pytest.mark.parametrize("backend", BACKENDS)
@_SETTINGS
@given(case=_requests)
def test_asgi_app_round_trip(backend: str, case: Request) -> None:
    headers = [(b"host", b"testserver"), (b"x-status", str(case.status).encode())]
    headers.append((b"x-chunks", json.dumps([c.decode("latin-1") for c in case.chunks]).encode()))
    headers += [(n.encode(), v.encode()) for n, v in zip(case.names, case.values, strict=False)]
    if case.body:
        headers.append((b"content-length", str(len(case.body)).encode()))
    scope = http_scope(
        method=case.method,
        path=case.path,
        raw_path=None,
        query_string=case.query.encode("latin-1"),
        headers=headers,
        client=["127.0.0.1", 50000],
        server=["testserver", 80],
    )
    inner = AsgiToWsgi(_asgi_app, backend=backend, lifespan="off")  # type: ignore[arg-type]
    bridged = WsgiToAsgi(inner)

    async def both() -> tuple[Any, Any]:
        direct = await _call_asgi(_asgi_app, dict(scope), case.body)
        through = await _call_asgi(bridged, dict(scope), case.body)
        return direct, through

    try:
        direct, through = anyio.run(both, backend=backend)
    finally:
        inner.close()
    assert through[0] == direct[0]
    assert _minus_length(through[1], through[2]) == direct[1]
    assert through[2] == direct[2]
