"""The apps the benchmark serves: one raw WSGI app, one raw ASGI app, the same routes.

Rules:

1. Both apps answer the same paths with the same bytes, so a row "through an
   adapter" and a row "native" differ only by the adapter:

   ===============  ====================================================
   path             behaviour
   ===============  ====================================================
   ``/hello``       ``200``, ``Hello, world!`` (13 bytes, Content-Length)
   ``/flask``       the same, from a Flask route (WSGI app only)
   ``/download``    1 MiB in 64 KiB chunks, with Content-Length
   ``/upload``      reads the body in 64 KiB reads, answers its length
   ``/stream-down`` 1 MiB in 4 KiB chunks, no Content-Length (chunked)
   ``/stream-up``   reads the body in 4 KiB reads, answers its length
   ``/lines``       iterates over the body's lines, answers its length
                    (the ASGI app counts it as ``/upload`` does)
   ===============  ====================================================

2. Bodies are generators (WSGI) or ``more_body`` messages (ASGI), never one
   pre-joined buffer: adapters must stream them chunk by chunk.
3. The app a *server* runs is picked by ``BRIDGE_BENCH_ADAPTER`` when the
   server first looks up :data:`asgi_served` or :data:`wsgi_served` (a module
   ``__getattr__``), so importing this module never imports a peer adapter
   (a2wsgi, asgiref); bridge's own come with :mod:`bridge`.
4. Besides bridge's and the peers' adapters, two reference rows: ``native``,
   the app without an adapter (Flask has no ASGI form), and ``bare``, the
   least an adapter can do (:mod:`compat_suite.bare`): the ceiling of any
   adapter, Flask's included.
5. Nothing here knows about timing; the drivers (``compat_suite.bench``) do.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, cast

from bridge import AsgiToWsgi, WsgiToAsgi
from bridge.types import ASGIApp, Environ, Receive, Scope, Send, StartResponse, WSGIApp
from compat_suite import bare
from compat_suite.apps import answer_lifespan

__all__ = [
    "ADAPTER_ENV",
    "ASGI_IN_WSGI",
    "HELLO",
    "WSGI_IN_ASGI",
    "AdapterUnavailable",
    "asgi_app",
    "asgi_in_wsgi",
    "close_app",
    "flask_app",
    "wsgi_app",
    "wsgi_in_asgi",
]

#: Which adapter a served app goes through, read by :data:`asgi_served` / :data:`wsgi_served`.
ADAPTER_ENV = "BRIDGE_BENCH_ADAPTER"

#: Adapters that put a WSGI app on an ASGI server ("native" is the raw ASGI app,
#: "bare" the least any adapter can do: :func:`compat_suite.bare.bare_wsgi_in_asgi`).
WSGI_IN_ASGI: tuple[str, ...] = (
    "bridge-thread", "bridge-greenlet", "a2wsgi", "asgiref", "bare", "native",
)  # fmt: skip
#: Adapters that put an ASGI app on a WSGI server ("native" is the raw WSGI app,
#: "bare" the least any adapter can do: :class:`compat_suite.bare.BareAsgiInWsgi`).
#: asgiref has no ASGI-to-WSGI adapter, and bridge's executors only exist on the other side.
ASGI_IN_WSGI: tuple[str, ...] = ("bridge", "a2wsgi", "bare", "native")

HELLO = b"Hello, world!"
KIB = 1024
MIB = 1024 * KIB

DOWNLOAD_BYTES = 1 * MIB
DOWNLOAD_CHUNK = 64 * KIB
UPLOAD_CHUNK = 64 * KIB
STREAM_BYTES = 1 * MIB
STREAM_CHUNK = 4 * KIB

#: One line of the ``/lines`` upload, and its sizes: 1 MiB of 64-byte lines
#: (16,384), in 64 KiB pieces of whole lines. Not a byte more than 1 MiB, so
#: the body stays in memory under bridge's default ``body_buffer_size``.
LINE = b"l" * 63 + b"\n"
LINES_CHUNK = 64 * KIB
LINES_BYTES = MIB

_DOWNLOAD_PIECE = b"d" * DOWNLOAD_CHUNK
_STREAM_PIECE = b"s" * STREAM_CHUNK


class AdapterUnavailable(RuntimeError):
    """The named adapter cannot be built here (not written yet, not installed...)."""


# --------------------------------------------------------------------------- WSGI


def _pieces(piece: bytes, total: int) -> Iterator[bytes]:
    for _ in range(total // len(piece)):
        yield piece


def _read_body(environ: Environ, chunk: int) -> int:
    # PEP 3333 §Input and Error Streams: never read past CONTENT_LENGTH.
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    seen = 0
    while remaining > 0:
        data: bytes = stream.read(min(chunk, remaining))
        if not data:
            break
        seen += len(data)
        remaining -= len(data)
    return seen


def _wsgi_text(start_response: StartResponse, body: bytes) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _wsgi_hello(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    return _wsgi_text(start_response, HELLO)


def _wsgi_download(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(DOWNLOAD_BYTES))],
    )
    return _pieces(_DOWNLOAD_PIECE, DOWNLOAD_BYTES)


def _wsgi_stream_down(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _pieces(_STREAM_PIECE, STREAM_BYTES)


def _wsgi_upload(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    return _wsgi_text(start_response, str(_read_body(environ, UPLOAD_CHUNK)).encode())


def _wsgi_stream_up(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    return _wsgi_text(start_response, str(_read_body(environ, STREAM_CHUNK)).encode())


def _wsgi_lines(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    # PEP 3333 §Input and Error Streams: iteration yields lines, and ends at
    # the end of the body here (every adapter measured sets it up so).
    seen = sum(len(line) for line in environ["wsgi.input"])
    return _wsgi_text(start_response, str(seen).encode())


def _make_flask_app() -> WSGIApp:
    from flask import Flask

    flask = Flask("bridge_bench")

    @flask.get("/flask")
    def hello() -> str:
        return HELLO.decode()

    return cast("WSGIApp", flask)


#: A Flask app with one route, ``GET /flask``; also reachable through :data:`wsgi_app`.
flask_app: WSGIApp = _make_flask_app()

_WSGI_ROUTES: dict[str, WSGIApp] = {
    "/hello": _wsgi_hello,
    "/flask": flask_app,
    "/download": _wsgi_download,
    "/upload": _wsgi_upload,
    "/stream-down": _wsgi_stream_down,
    "/stream-up": _wsgi_stream_up,
    "/lines": _wsgi_lines,
}


def wsgi_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """The raw PEP 3333 app: dispatches on ``PATH_INFO`` (see the module's table).

    :param environ: the WSGI environ.
    :param start_response: the server's ``start_response``.
    """
    route = _WSGI_ROUTES.get(environ.get("PATH_INFO", ""))
    if route is None:
        start_response("404 Not Found", [("Content-Length", "0")])
        return []
    return route(environ, start_response)


# --------------------------------------------------------------------------- ASGI


async def _asgi_start(send: Send, headers: list[tuple[bytes, bytes]], status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def _asgi_text(send: Send, body: bytes) -> None:
    await _asgi_start(
        send, [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    )
    await send({"type": "http.response.body", "body": body})


async def _asgi_pieces(send: Send, piece: bytes, total: int) -> None:
    for _ in range(total // len(piece)):
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _asgi_count_body(receive: Receive) -> int:
    seen = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return seen
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return seen


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The raw ASGI app: the routes of :func:`wsgi_app` except ``/flask``; answers lifespan.

    :param scope: the connection scope.
    :param receive: the server's ``receive``.
    :param send: the server's ``send``.
    """
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    path = scope["path"]
    if path == "/hello":
        await _asgi_text(send, HELLO)
    elif path == "/download":
        await _asgi_start(
            send,
            [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", b"%d" % DOWNLOAD_BYTES),
            ],
        )
        await _asgi_pieces(send, _DOWNLOAD_PIECE, DOWNLOAD_BYTES)
    elif path == "/stream-down":
        await _asgi_start(send, [(b"content-type", b"application/octet-stream")])
        await _asgi_pieces(send, _STREAM_PIECE, STREAM_BYTES)
    elif path in ("/upload", "/stream-up", "/lines"):
        await _asgi_text(send, str(await _asgi_count_body(receive)).encode())
    else:
        await _asgi_start(send, [(b"content-length", b"0")], status=404)
        await send({"type": "http.response.body", "body": b""})


# --------------------------------------------------------------------------- adapters


def _attribute(module: str, name: str) -> Callable[..., Any]:
    """``module.name`` of a peer adapter, imported only when it is asked for."""
    try:
        found: Callable[..., Any] = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise AdapterUnavailable(f"{module}.{name} is not available: {exc}") from exc
    return found


def wsgi_in_asgi(adapter: str, app: WSGIApp = wsgi_app) -> ASGIApp:
    """The ASGI app that serves the WSGI ``app`` through ``adapter``.

    :param adapter: an entry of :data:`WSGI_IN_ASGI`; ``"native"`` returns :func:`asgi_app`,
        ``"bare"`` :func:`compat_suite.bare.bare_wsgi_in_asgi` over ``app``.
    :param app: the WSGI app to wrap.
    :raises AdapterUnavailable: if the adapter cannot be imported or built.
    :raises ValueError: for a name that is not in :data:`WSGI_IN_ASGI`.
    """
    if adapter == "native":
        return asgi_app
    if adapter in ("bridge-thread", "bridge-greenlet"):
        executor: Literal["thread", "greenlet"] = (
            "greenlet" if adapter == "bridge-greenlet" else "thread"
        )
        try:
            return WsgiToAsgi(app, executor=executor)
        except (ValueError, ImportError) as exc:
            raise AdapterUnavailable(f"bridge.WsgiToAsgi({adapter}) failed: {exc}") from exc
    if adapter == "bare":
        return bare.bare_wsgi_in_asgi(app)
    if adapter == "a2wsgi":
        return cast("ASGIApp", _attribute("a2wsgi", "WSGIMiddleware")(app))
    if adapter == "asgiref":
        return cast("ASGIApp", _attribute("asgiref.wsgi", "WsgiToAsgi")(app))
    raise ValueError(f"no WSGI-in-ASGI adapter {adapter!r}; expected one of {WSGI_IN_ASGI}")


def asgi_in_wsgi(adapter: str, app: ASGIApp = asgi_app) -> WSGIApp:
    """The WSGI app that serves the ASGI ``app`` through ``adapter``.

    Release it with :func:`close_app` (bridge's adapter owns a private loop).

    :param adapter: an entry of :data:`ASGI_IN_WSGI`; ``"native"`` returns :func:`wsgi_app`,
        ``"bare"`` a :class:`compat_suite.bare.BareAsgiInWsgi` over ``app``.
    :param app: the ASGI app to wrap.
    :raises AdapterUnavailable: if the adapter cannot be imported or built.
    :raises ValueError: for a name that is not in :data:`ASGI_IN_WSGI`.
    """
    if adapter == "native":
        return wsgi_app
    if adapter == "bridge":
        return AsgiToWsgi(app)
    if adapter == "bare":
        return bare.BareAsgiInWsgi(app)
    if adapter == "a2wsgi":
        return cast("WSGIApp", _attribute("a2wsgi", "ASGIMiddleware")(app))
    raise ValueError(f"no ASGI-in-WSGI adapter {adapter!r}; expected one of {ASGI_IN_WSGI}")


def close_app(app: object) -> None:
    """Release what an adapter holds (bridge's ``AsgiToWsgi.close()``); a no-op otherwise.

    :param app: an app built by :func:`asgi_in_wsgi` or :func:`wsgi_in_asgi`.
    """
    close = getattr(app, "close", None)
    if callable(close):
        close()


def __getattr__(name: str) -> object:
    # PEP 562: servers look up "compat_suite.bench_apps:asgi_served" (or wsgi_served)
    # once; build it then, from the environment, and keep it.
    if name == "asgi_served":
        built: object = wsgi_in_asgi(os.environ.get(ADAPTER_ENV) or "native")
    elif name == "wsgi_served":
        built = asgi_in_wsgi(os.environ.get(ADAPTER_ENV) or "native")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = built
    return built
