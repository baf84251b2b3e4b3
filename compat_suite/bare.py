"""The least an adapter can do, in each direction: the benchmark's ceiling for any adapter.

The benchmark compares bridge with the peers and with the app run natively.
Some comparisons have no native row to stand on: Flask has no ASGI form, and
an ASGI app on a WSGI server has to cross into an event loop somehow. The
bare adapters leave out everything an adapter can leave out, so their rows
say how much of a cell's cost belongs to the server, the app and the
crossing itself, whatever the adapter:

- :func:`bare_wsgi_in_asgi` calls the WSGI app inline on the event loop,
  with the environ PEP 3333 §environ Variables requires plus the request's
  headers, joins the response and sends it as two messages.
- :class:`BareAsgiInWsgi` runs the ASGI app on one private event loop in a
  daemon thread (uvloop when installed, as bridge's default), one hop there
  and one back per request, with the request body read up front and the
  response collected whole: the least an adapter can do that runs the app
  on an event loop, which any ASGI app may need (a WSGI server's threads
  have none).

Neither is an adapter to use. They hold bodies and responses in memory,
check nothing, have no ``write()``, no streaming, no disconnects and no
lifespan beyond answering it; the WSGI one blocks the loop while the app
runs. The benchmark runs them only for bodyless requests with a 13-byte
answer (``hello``, and ``flask`` for WSGI apps), where none of that changes
what is measured.
"""

from __future__ import annotations

import asyncio
import http.client
import importlib.util
import io
import sys
import threading
from collections.abc import Callable, Iterable
from queue import SimpleQueue
from typing import Any

from bridge.types import (
    ASGIApp,
    Environ,
    Message,
    Receive,
    Scope,
    Send,
    StartResponse,
    WSGIApp,
)
from compat_suite.apps import answer_lifespan

__all__ = ["BareAsgiInWsgi", "bare_wsgi_in_asgi"]


# --------------------------------------------------------------------------- WSGI app, ASGI server


def bare_wsgi_in_asgi(app: WSGIApp) -> ASGIApp:
    """The WSGI ``app`` as an ASGI app, the least way there is (see the module docstring).

    :param app: the WSGI app to call.
    """

    def write(data: bytes) -> None:
        # PEP 3333 §The write() Callable: for old frameworks; the benchmark's apps never call it.
        raise NotImplementedError("the bare adapter has no write()")

    async def bare(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)  # the WSGI app has none
            return
        environ = _environ(scope)
        if "CONTENT_LENGTH" in environ or "HTTP_TRANSFER_ENCODING" in environ:
            environ["wsgi.input"] = io.BytesIO(await _body(receive))
        started: list[tuple[str, list[tuple[str, str]]]] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            started.append((status, headers))
            return write

        iterable = app(environ, start_response)
        try:
            body = b"".join(iterable)
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()
        status, headers = started[-1]
        start: Message = {
            "type": "http.response.start",
            "status": int(status[:3]),
            # ASGI www §Response Start: header names must be lowercased.
            "headers": [
                (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers
            ],
        }
        await send(start)
        await send({"type": "http.response.body", "body": body})

    return bare


def _environ(scope: Scope) -> Environ:
    """PEP 3333 §environ Variables from ``scope``, nothing checked."""
    server = scope.get("server") or ("localhost", 80)
    root_path: str = scope.get("root_path", "")
    path: str = scope["path"]
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    environ: Environ = {
        "REQUEST_METHOD": scope["method"],
        # PEP 3333 §Unicode Issues: native strings holding the bytes as latin-1.
        "SCRIPT_NAME": root_path.encode("utf-8").decode("latin-1"),
        "PATH_INFO": path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": "HTTP/" + scope.get("http_version", "1.1"),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1])
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        if name not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = "HTTP_" + name
        value = raw_value.decode("latin-1")
        # RFC 9110 §5.3: repeated fields join with commas.
        environ[name] = f"{environ[name]},{value}" if name in environ else value
    return environ


async def _body(receive: Receive) -> bytes:
    """The whole request body, in memory."""
    pieces = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        pieces.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(pieces)


# --------------------------------------------------------------------------- ASGI app, WSGI server


class BareAsgiInWsgi:
    """The ASGI ``app`` as a WSGI app, the least way there is (see the module docstring).

    Its loop starts with the object, so build it where it serves (in the
    server's worker process, after any fork), and release it with :meth:`close`.

    :param app: the ASGI app to run.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        if importlib.util.find_spec("uvloop") is not None:
            import uvloop

            self._loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        else:
            self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="bare-asgi-loop", daemon=True
        )
        self._thread.start()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request: one hop to the loop, one back."""
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        answer: SimpleQueue[tuple[Message | None, list[bytes], BaseException | None]]
        answer = SimpleQueue()
        coroutine = self._run(_scope(environ), body, answer.put)
        self._loop.call_soon_threadsafe(self._loop.create_task, coroutine)
        start, chunks, error = answer.get()
        if error is not None:
            raise error
        if start is None:
            raise RuntimeError("the ASGI app returned without starting a response")
        status: int = start["status"]
        headers = [
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in start["headers"]
        ]
        start_response(f"{status} {http.client.responses.get(status, '')}", headers)
        return chunks

    async def _run(
        self,
        scope: Scope,
        body: bytes,
        put: Callable[[tuple[Message | None, list[bytes], BaseException | None]], None],
    ) -> None:
        request: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
        start: Message | None = None
        chunks: list[bytes] = []

        async def receive() -> Message:
            # The body, then (the response being whole before it goes out) a disconnect.
            return request.pop() if request else {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message.get("body"):
                chunks.append(message["body"])

        try:
            await self.app(scope, receive, send)
        except BaseException as exc:  # handed to the WSGI thread, which raises it
            put((None, [], exc))
            if not isinstance(exc, Exception):
                raise
            return
        put((start, chunks, None))

    def close(self) -> None:
        """Stop the loop and join its thread; the object serves no more requests."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._loop.close()


def _scope(environ: Environ) -> Scope:
    """An ASGI ``http`` scope from ``environ``, nothing checked."""
    headers = [
        (key[5:].replace("_", "-").lower().encode("latin-1"), value.encode("latin-1"))
        for key, value in environ.items()
        if key.startswith("HTTP_")
    ]
    for key, name in (("CONTENT_TYPE", b"content-type"), ("CONTENT_LENGTH", b"content-length")):
        if environ.get(key):
            headers.append((name, environ[key].encode("latin-1")))
    script_name: str = environ.get("SCRIPT_NAME", "")
    # ASGI www §HTTP Connection Scope: path is the decoded text, raw_path the octets.
    raw_path = (script_name + environ.get("PATH_INFO", "")).encode("latin-1")
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": environ.get("SERVER_PROTOCOL", "HTTP/1.1")[5:],
        "method": environ["REQUEST_METHOD"],
        "scheme": environ.get("wsgi.url_scheme", "http"),
        "path": raw_path.decode("utf-8", "replace"),
        "raw_path": raw_path,
        "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
        "root_path": script_name.encode("latin-1").decode("utf-8", "replace"),
        "headers": headers,
        "server": (environ.get("SERVER_NAME", "localhost"), int(environ.get("SERVER_PORT", 80))),
    }
    if environ.get("REMOTE_ADDR"):
        scope["client"] = (environ["REMOTE_ADDR"], int(environ.get("REMOTE_PORT") or 0))
    return scope
