"""``AsgiToWsgi``: an ASGI application served by a WSGI server.

Rules of the thread/loop boundary:
1. The WSGI server's thread drives each request. It spawns the app task on the
   private loop once (one thread-safe wake-up, no waiting), then serves a
   ``queue.SimpleQueue`` the loop side fills: response messages to return or
   yield, and "read a body chunk" requests, which it performs itself, because
   ``wsgi.input`` is blocking I/O that must never run on the loop (D1).
2. Wake-ups back to the loop (a body chunk read, room in the send buffer, the
   client gone) go through the backend's own ``call_soon_threadsafe`` /
   ``run_sync_soon``, only when a loop-side task actually waits for them.
   A hello-world costs one hop each way: spawn, and one queue put that carries
   start and body together (start is held until the first body, D16).
3. Backpressure (D5): ``send()`` returns at once while the bytes handed over
   but not yet consumed by the WSGI server stay within ``send_buffer``; beyond
   that it waits until the server asks for the next chunk, which is when the
   previous one has been written.
4. Disconnect (D7): an early ``close()`` of the iterable, or an early EOF of
   ``wsgi.input``, marks the client gone: ``receive()`` returns
   ``http.disconnect``, ``send()`` raises :class:`~bridge.ClientDisconnected`,
   and the app task is cancelled ``disconnect_grace`` seconds later unless it
   finished the response first.
5. Shared state between the two threads lives in ``_Exchange`` and changes
   under its lock; every loop-side wait is registered under that lock after
   checking ``_closed``, so no wake-up is lost.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from queue import SimpleQueue
from types import TracebackType
from typing import IO, Any, Literal

import anyio

from bridge import loop as _loop_module
from bridge.asgi_messages import BODY, PATHSEND, START, ResponseCycle, ResponseStart
from bridge.errors import (
    BridgeError,
    ClientDisconnected,
    LifespanStartupFailed,
    LifespanUnsupported,
    ServerProtocolError,
)
from bridge.lifespan import AsgiVersion, LifespanManager, LifespanShim, as_asgi3
from bridge.loop import PrivateLoop, get_loop
from bridge.scope import DEFAULT_EXTENSIONS, scope_from_environ
from bridge.types import ASGIApp, Environ, Message, Receive, Scope, Send, StartResponse

__all__ = ["AsgiToWsgi"]

logger = logging.getLogger("bridge.asgi_to_wsgi")

# Items the loop side puts on the queue for the WSGI thread.
_READ = 0  # (_READ,): read one body chunk and answer
_BODY = 1  # (_BODY, data, done, start | None)
_PATH = 2  # (_PATH, path, done, start)
_ERROR = 3  # (_ERROR, exception)
_NO_START = 4  # (_NO_START,): the app returned without http.response.start
_READ_ITEM = (_READ,)

_ERROR_HEADERS = [("Content-Type", "text/plain; charset=utf-8")]


def _plain(
    start_response: StartResponse, status: str, text: str, exc: BaseException | None = None
) -> list[bytes]:
    body = text.encode()
    headers = [*_ERROR_HEADERS, ("Content-Length", str(len(body)))]
    traceback = None if exc is None else exc.__traceback__
    if exc is None or traceback is None:
        start_response(status, headers)
    else:
        start_response(status, headers, (type(exc), exc, traceback))
    return [body]


class _FileChunks:
    """pathsend without ``wsgi.file_wrapper``: the file in chunks, closed by ``close()``."""

    def __init__(self, file: IO[bytes], chunk_size: int) -> None:
        self._file = file
        self._chunk_size = chunk_size

    def __iter__(self) -> Iterator[bytes]:
        return iter(lambda: self._file.read(self._chunk_size), b"")

    def close(self) -> None:
        self._file.close()


class _Exchange:
    """One request: ``receive``/``send`` on the loop, the WSGI iterable in the server thread."""

    __slots__ = (
        "_app",
        "_body_left",
        "_call_soon",
        "_cancel_scope",
        "_chunk_size",
        "_clock",
        "_closed",
        "_complete",
        "_cycle",
        "_environ",
        "_finished",
        "_first",
        "_grace",
        "_input",
        "_limit",
        "_lock",
        "_no_body",
        "_pending_start",
        "_queue",
        "_read_result",
        "_recv_event",
        "_request_done",
        "_scope",
        "_send_event",
        "_suppress_body",
        "_terminal_sent",
        "_unacked",
        "_wsgi_closed",
        "_yielded",
    )

    def __init__(
        self,
        adapter: AsgiToWsgi,
        environ: Environ,
        scope: dict[str, Any],
        loop: PrivateLoop,
    ) -> None:
        # Typed as returning object: D8 logs a non-None return.
        self._app: Callable[[Scope, Receive, Send], Awaitable[object]] = adapter.app
        self._environ = environ
        self._scope = scope
        self._call_soon = loop.call_soon
        self._clock = loop.clock
        self._chunk_size = adapter.chunk_size
        self._limit = adapter.send_buffer
        self._grace = adapter.disconnect_grace
        self._queue: SimpleQueue[tuple[Any, ...]] = SimpleQueue()
        self._lock = threading.Lock()
        # D1: with wsgi.input_terminated read to EOF (None); else CONTENT_LENGTH
        # bytes, and nothing at all when it is missing or empty.
        if environ.get("wsgi.input_terminated"):
            self._body_left: int | None = None
        else:
            length = environ.get("CONTENT_LENGTH")
            try:
                self._body_left = int(length) if length else 0
            except ValueError:
                raise ServerProtocolError(f"invalid CONTENT_LENGTH {length!r}") from None
            if self._body_left < 0:
                raise ServerProtocolError(f"invalid CONTENT_LENGTH {length!r}")
        self._no_body = self._body_left == 0
        self._input = environ["wsgi.input"]
        # Shared (under _lock)
        self._closed = False  # the client is gone: send() raises
        self._wsgi_closed = False  # the WSGI side stopped reading the queue
        self._unacked = 0
        self._recv_event: anyio.Event | None = None
        self._send_event: anyio.Event | None = None
        self._read_result: Message | None = None
        # Loop side
        self._cycle = ResponseCycle()
        self._pending_start: ResponseStart | None = None
        self._suppress_body = False
        self._complete = False
        self._request_done = False
        self._terminal_sent = False
        self._cancel_scope: anyio.CancelScope | None = None
        # WSGI side
        self._finished = False
        self._first: bytes | None = None
        self._yielded = 0

    # ------------------------------------------------------------ loop side

    async def run(self) -> None:
        """The app task; never raises except for cancellation of the whole loop."""
        try:
            with anyio.CancelScope() as scope:
                self._cancel_scope = scope
                if self._closed:
                    scope.deadline = anyio.current_time() + self._grace
                result = await self._app(self._scope, self.receive, self.send)
                if result is not None:
                    # D8: "Non-None return -> log."
                    logger.warning("ASGI callable returned a non-None value: %r", result)
        except Exception as exc:
            self._fail(exc)
        finally:
            self._cancel_scope = None
            if not self._terminal_sent:
                self._finish_incomplete()

    def _put_terminal(self, item: tuple[Any, ...]) -> None:
        self._terminal_sent = True
        self._queue.put(item)

    def _fail(self, exc: Exception) -> None:
        if self._closed and isinstance(exc, OSError):
            # Our own ClientDisconnected, propagated by the app: not an error.
            logger.debug("ASGI app stopped after the client disconnected: %r", exc)
            return
        if self._terminal_sent:
            logger.error("Exception in ASGI application after the response completed", exc_info=exc)
            return
        self._put_terminal((_ERROR, exc))

    def _finish_incomplete(self) -> None:
        start = self._pending_start
        if not self._cycle.started:
            self._put_terminal((_NO_START,))
            return
        if not self._closed:
            # D8: "Start but no final body -> end the response and log."
            logger.warning("ASGI callable returned without completing the response")
        self._pending_start = None
        self._put_terminal((_BODY, b"", True, start))

    async def receive(self) -> Message:
        """ASGI ``receive``: the request body (D1), then ``http.disconnect`` (D2)."""
        if not self._request_done:
            if self._no_body:
                self._request_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            with self._lock:
                if self._closed or self._complete:
                    self._request_done = True
                    return {"type": "http.disconnect"}
                event = self._recv_event = anyio.Event()
                self._read_result = None
                self._queue.put(_READ_ITEM)
            await event.wait()
            message = self._read_result or {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message["more_body"]:
                self._request_done = True
            return message
        # D2: block until the response completes or the client disconnects.
        if not self._complete:
            with self._lock:
                wait = None if self._closed else anyio.Event()
                self._recv_event = wait
            if wait is not None:
                await wait.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        """ASGI ``send``: check the message (D4-D6) and hand it to the WSGI thread.

        :raises ClientDisconnected: once the client is gone (D7, spec 2.4).
        :raises AppProtocolError: for an invalid message or order (D6).
        """
        if self._closed:
            raise ClientDisconnected("the client disconnected")
        kind, payload, done = self._cycle.feed(message)
        if kind == START:
            self._pending_start = payload
            status = payload.status
            # D10: HEAD, 1xx, 204 and 304 have no body; Content-Length is kept.
            self._suppress_body = (
                status < 200 or status in (204, 304) or self._scope["method"] == "HEAD"
            )
            return
        if kind == BODY:
            if self._suppress_body:
                payload = b""
            if not payload and not done:
                return  # nothing to hand over (PEP 3333: empty chunks send nothing)
            item: tuple[Any, ...] = (_BODY, payload, done, self._pending_start)
        elif kind == PATHSEND:
            if self._suppress_body:
                item = (_BODY, b"", done, self._pending_start)
            else:
                item = (_PATH, payload, done, self._pending_start)
        else:  # TRAILERS (D11): waited for, then discarded
            if not done:
                return
            item = (_BODY, b"", True, self._pending_start)
        self._pending_start = None
        wait = None
        with self._lock:
            if self._closed:
                raise ClientDisconnected("the client disconnected")
            self._queue.put(item)
            if done:
                self._complete = self._terminal_sent = True
                recv, self._recv_event = self._recv_event, None
            else:
                recv = None
                self._unacked += len(payload)
                if self._unacked > self._limit:
                    wait = self._send_event = anyio.Event()
        if recv is not None:
            recv.set()
        if wait is not None:
            await wait.wait()
            if self._closed:
                raise ClientDisconnected("the client disconnected")

    def _on_disconnect(self) -> None:
        """On the loop: wake every waiter and schedule the cancellation (D7)."""
        with self._lock:
            recv, self._recv_event = self._recv_event, None
            send, self._send_event = self._send_event, None
            if recv is not None and self._read_result is None:
                self._read_result = {"type": "http.disconnect"}
        if recv is not None:
            recv.set()
        if send is not None:
            send.set()
        scope = self._cancel_scope
        if scope is not None and not self._complete:
            # anyio.current_time() needs a current task; this runs as a bare callback.
            scope.deadline = min(scope.deadline, self._clock() + self._grace)

    # ------------------------------------------------------------ WSGI side

    def _wake(self, func: Any) -> None:
        try:
            self._call_soon(func)
        except Exception:  # the loop is gone (stopped or shut down)
            logger.debug("bridge's loop is gone; cannot wake it", exc_info=True)

    def _serve_read(self) -> None:
        """D1: read one bounded chunk of wsgi.input in this (WSGI) thread."""
        left = self._body_left
        message: Message
        try:
            if left is None:
                data = self._input.read(self._chunk_size)
                message = {"type": "http.request", "body": data, "more_body": bool(data)}
            elif left == 0:
                message = {"type": "http.request", "body": b"", "more_body": False}
            else:
                data = self._input.read(min(left, self._chunk_size))
                if data:
                    left -= len(data)
                    self._body_left = left
                    message = {"type": "http.request", "body": data, "more_body": left > 0}
                else:
                    # D1: "An early EOF becomes http.disconnect."
                    logger.info("request body ended %d bytes early: client disconnected", left)
                    message = {"type": "http.disconnect"}
        except Exception:
            logger.info("reading wsgi.input failed; treating it as a disconnect", exc_info=True)
            message = {"type": "http.disconnect"}
        gone = message["type"] == "http.disconnect"
        with self._lock:
            if gone:
                self._closed = True
            event, self._recv_event = self._recv_event, None
            self._read_result = message
        if gone:
            self._wake(self._on_disconnect)
        if event is not None:
            self._wake(event.set)

    def respond(self, start_response: StartResponse) -> Iterable[bytes]:
        """Wait for the response to start, call ``start_response``, return the body."""
        get = self._queue.get
        while True:
            item = get()
            kind = item[0]
            if kind == _BODY:
                _, data, done, start = item
                start_response(start.status_line, start.headers)
                if done:
                    self._finished = True
                    return [data] if data else []
                self._first = data
                return self
            if kind == _READ:
                self._serve_read()
                continue
            if kind == _ERROR:
                self._finished = True
                exc = item[1]
                # D9: before any body, 500 via start_response with exc_info.
                logger.error("Exception in ASGI application", exc_info=exc)
                return _plain(
                    start_response, "500 Internal Server Error", "Internal Server Error", exc
                )
            if kind == _NO_START:
                self._finished = True
                if self._closed:
                    logger.info("client disconnected before the response started")
                    return _plain(start_response, "400 Bad Request", "Incomplete request")
                # D8: "No start -> 500."
                logger.error("ASGI callable returned without starting response")
                return _plain(start_response, "500 Internal Server Error", "Internal Server Error")
            # _PATH (D12)
            _, path, done, start = item
            self._finished = True
            try:
                file = open(path, "rb")  # noqa: SIM115 - closed by the file wrapper
            except OSError as exc:
                logger.error("http.response.pathsend cannot open %r", path, exc_info=exc)
                return _plain(
                    start_response, "500 Internal Server Error", "Internal Server Error", exc
                )
            start_response(start.status_line, start.headers)
            file_wrapper = self._environ.get("wsgi.file_wrapper")
            if file_wrapper is not None:
                return file_wrapper(file, self._chunk_size)  # type: ignore[no-any-return]
            return _FileChunks(file, self._chunk_size)

    def __iter__(self) -> _Exchange:
        return self

    def __next__(self) -> bytes:
        data = self._first
        if data is not None:
            self._first = None
            self._yielded = len(data)
            return data
        if self._finished:
            raise StopIteration
        if self._yielded:
            # The server asks for more: the previous chunk is written (D5).
            self._ack(self._yielded)
            self._yielded = 0
        get = self._queue.get
        while True:
            item = get()
            kind = item[0]
            if kind == _BODY:
                data = item[1]
                if item[2]:
                    self._finished = True
                if data:
                    self._yielded = len(data)
                    return data  # type: ignore[no-any-return]
                if self._finished:
                    raise StopIteration
            elif kind == _READ:
                self._serve_read()
            else:
                # D9: after the body started, propagate so the server aborts.
                self._finished = True
                raise item[1]

    def _ack(self, size: int) -> None:
        with self._lock:
            self._unacked -= size
            event = self._send_event
            if event is None or self._unacked > self._limit:
                return
            self._send_event = None
        self._wake(event.set)

    def close(self) -> None:
        """Called by the WSGI server; before the end it means the client is gone (D7)."""
        with self._lock:
            if self._wsgi_closed:
                return
            self._wsgi_closed = True
            if not self._finished:
                self._closed = True
            hop = self._closed or self._send_event is not None or self._recv_event is not None
        if hop:
            self._wake(self._on_disconnect)
        # Anything the app raised after we stopped listening still gets a log line.
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item[0] == _ERROR and not isinstance(item[1], OSError):
                logger.error("Exception in ASGI application after disconnect", exc_info=item[1])


class AsgiToWsgi:
    """An ASGI application served by a WSGI server: ``AsgiToWsgi(asgi_app)`` *is* a WSGI app.

    ::

        wsgi_app = AsgiToWsgi(asgi_app)            # lifespan runs before the first request
        with AsgiToWsgi(asgi_app) as wsgi_app:     # or explicitly: startup now, shutdown on exit
            ...

    :param app: the ASGI application (ASGI 3, or ASGI 2 double callable).
    :param lifespan: ``"auto"`` runs lifespan and serves apps that do not
        support it; ``"on"`` makes an unsupported app an error; ``"off``" skips it.
    :param backend: the private loop's backend, ``"asyncio"`` or ``"trio"``.
    :param backend_options: passed to :func:`anyio.run`
        (``{"use_uvloop": True}`` for uvloop on asyncio).
    :param startup_timeout: seconds to wait for ``lifespan.startup.complete``.
    :param shutdown_timeout: seconds to wait for ``lifespan.shutdown.complete``.
    :param disconnect_grace: seconds the app may run on after its client left
        before it is cancelled (D7).
    :param chunk_size: the size of each ``wsgi.input`` read (D1) and of file reads.
    :param send_buffer: bytes the app may send ahead of the WSGI server before
        ``send()`` waits (D5); defaults to ``chunk_size``.
    :param asgi_version: ``"auto"``, ``"2"`` or ``"3"``: how to call ``app`` (F3).
    :raises ValueError: for an invalid option.
    """

    def __init__(
        self,
        app: Any,
        *,
        lifespan: Literal["auto", "on", "off"] = "auto",
        backend: Literal["asyncio", "trio"] = "asyncio",
        backend_options: dict[str, Any] | None = None,
        startup_timeout: float = 60.0,
        shutdown_timeout: float = 60.0,
        disconnect_grace: float = 5.0,
        chunk_size: int = 64 * 1024,
        send_buffer: int | None = None,
        asgi_version: AsgiVersion = "auto",
    ) -> None:
        if lifespan not in ("auto", "on", "off"):
            raise ValueError(f"lifespan must be 'auto', 'on' or 'off', not {lifespan!r}")
        if backend not in ("asyncio", "trio"):
            raise ValueError(f"backend must be 'asyncio' or 'trio', not {backend!r}")
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        if disconnect_grace < 0:
            raise ValueError("disconnect_grace must not be negative")
        self.app: ASGIApp = as_asgi3(app, asgi_version)
        self.lifespan = lifespan
        self.backend = backend
        self.backend_options = dict(backend_options or {})
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.disconnect_grace = disconnect_grace
        self.chunk_size = chunk_size
        self.send_buffer = chunk_size if send_buffer is None else send_buffer
        self._extensions = DEFAULT_EXTENSIONS
        self._lock = threading.Lock()
        self._loop: PrivateLoop | None = None  # the loop lifespan ran on
        self._generation = -1
        self._state: dict[str, Any] | None = None
        self._startup_error: BaseException | None = None
        self._shim: LifespanShim | None = None

    # ------------------------------------------------------------ lifespan

    def _ready_loop(self) -> PrivateLoop:
        loop = self._loop
        if loop is not None and self._generation == _loop_module.generation and loop.running:
            return loop
        with self._lock:
            loop = self._loop
            if loop is None or self._generation != _loop_module.generation or not loop.running:
                # E1/E11: first use, or a fresh loop after fork or stop: lifespan again.
                loop = get_loop(self.backend, self.backend_options)
                self._start_lifespan(loop)
                self._loop = loop
                self._generation = _loop_module.generation
            return loop

    def _start_lifespan(self, loop: PrivateLoop) -> None:
        self._state = None
        self._startup_error = None
        self._shim = None
        if self.lifespan == "off":
            return
        shim = LifespanShim(self._manager)
        try:
            state = shim.startup(loop)
        except (LifespanStartupFailed, LifespanUnsupported) as exc:
            # E4: refuse to serve: every request gets a 500 and a log line.
            self._startup_error = exc
            logger.error("ASGI lifespan startup failed; every request will get a 500: %s", exc)
            return
        self._shim = shim
        if state is not None:
            self._state = state  # type: ignore[assignment]
            atexit.register(self._close_at_exit)

    def _manager(self) -> LifespanManager:
        return LifespanManager(
            self.app,
            startup_timeout=self.startup_timeout,
            shutdown_timeout=self.shutdown_timeout,
            required=self.lifespan == "on",
            asgi_version="3",
        )

    def __enter__(self) -> AsgiToWsgi:
        """Run lifespan startup now.

        :raises LifespanStartupFailed: if startup failed, raised or timed out.
        :raises LifespanUnsupported: with ``lifespan="on"`` for an app without lifespan.
        """
        self._ready_loop()
        if self._startup_error is not None:
            raise self._startup_error
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Run lifespan shutdown (E6). A later request runs startup again.

        :raises LifespanShutdownFailed: if shutdown failed, raised or timed out.
        """
        with self._lock:
            shim, self._shim = self._shim, None
            self._loop = None
            self._state = None
            atexit.unregister(self._close_at_exit)
            if shim is not None and self._generation == _loop_module.generation:
                shim.shutdown(self.shutdown_timeout)

    def _close_at_exit(self) -> None:
        try:
            self.close()
        except BridgeError:
            logger.exception("ASGI lifespan shutdown at interpreter exit failed")

    # ------------------------------------------------------------ WSGI

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request (PEP 3333)."""
        loop = self._ready_loop()
        loop.check_not_loop_thread()
        if self._startup_error is not None:
            logger.error("refusing request: ASGI lifespan startup failed: %s", self._startup_error)
            return _plain(start_response, "500 Internal Server Error", "Internal Server Error")
        try:
            scope = scope_from_environ(environ, state=self._state, extensions=self._extensions)
            exchange = _Exchange(self, environ, scope, loop)
        except ServerProtocolError as exc:
            logger.warning("bad request from the WSGI server: %s", exc)
            return _plain(start_response, "400 Bad Request", "Bad Request")
        loop.spawn(exchange.run)
        return exchange.respond(start_response)
