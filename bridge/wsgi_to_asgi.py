"""``WsgiToAsgi``: serve a WSGI application from an ASGI server (SPEC B1–B21, D3).

Rules:
1. The WSGI app, its iteration and its ``close()`` run on the *sync side* (a
   worker thread; later a greenlet), never on the loop (B1). The sync side
   talks to the loop only through ``executor.call_async(exchange, fn, *args)``,
   which runs ``await fn(*args)`` on the loop and blocks until it finishes.
   The loop side starts the sync side with ``await executor.run(fn, exchange)``.
   Those two calls are the whole executor seam.
2. One thread hop per request when the response is already in memory (a
   ``list``/``tuple``): the worker calls the app and collects the chunks, the
   loop sends them. Any other iterable costs one more hop (phase 2) plus one
   ``call_async`` per non-empty chunk, each sent before the next is pulled (B10:
   at most one chunk in flight: that bounds memory and is the backpressure).
3. Every wait across the boundary has a way out. ``call_async`` runs inside a
   cancel scope the loop can cancel; :meth:`_Exchange.abort` cancels it and
   makes every later ``call_async`` raise :class:`ClientDisconnected` at once.
   The loop aborts when ``send`` raises ``OSError``, when ``receive`` reports
   ``http.disconnect``, and when the server cancels the request task; in the
   last case it then waits (shielded) for the worker to run ``close()`` and
   return, so the thread and its limiter token go back to the pool.
4. ``close()`` of the object the app returned runs exactly once, in the
   worker, on every path (B15): ``_close_result`` is the only caller.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Literal, Protocol, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from bridge.environ import environ_from_scope
from bridge.errors import AppProtocolError, ClientDisconnected, ServerProtocolError
from bridge.types import Environ, Message, Receive, Scope, Send, WSGIApp
from bridge.wsgi_io import BODY_BUFFER_SIZE, ErrorStream, FileWrapper, RequestBody, StreamingInput
from bridge.wsgi_response import ResponseState, check_body_chunk, is_bodiless

__all__ = ["WsgiToAsgi"]

logger = logging.getLogger("bridge")

T = TypeVar("T")

#: Default number of worker threads per adapter (the size of anyio's default
#: limiter, and of asgiref's and a2wsgi's pools).
MAX_THREADS = 40

# What the first hop (phase 1) found.
_COLLECTED = 0  # the whole body is in exchange.chunks; result already closed
_STREAMING = 1  # exchange.chunks holds the first chunk; iterate the rest in phase 2
_PATHSEND = 2  # send exchange.file_path with http.response.pathsend; result closed
_FINISHED = 3  # everything, final message included, went out through call_async
_STREAMED = 4  # phase 2 sent every chunk; the final empty body is still due
_GONE = 5  # the client disconnected; result closed, nothing more to send

_PATHSEND_EXT = "http.response.pathsend"
_ZEROCOPY_EXT = "http.response.zerocopysend"


class _Executor(Protocol):
    """Where the sync side runs. See the module docstring, rule 1."""

    async def run(self, fn: Callable[[_Exchange], T], exchange: _Exchange) -> T:
        """Loop side: run ``fn(exchange)`` on the sync side and return its result."""

    async def run_plain(self, fn: Callable[[], object]) -> None:
        """Loop side: run a blocking callable that never crosses back (lifespan hooks)."""

    def call_async(self, exchange: _Exchange, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Sync side: run ``await fn(*args)`` on the loop; block until it is done."""


def _in_worker(fn: Callable[[_Exchange], T], exchange: _Exchange) -> T:
    try:
        return fn(exchange)
    finally:
        exchange.worker_finished()


class _ThreadExecutor:
    """The sync side in an anyio worker thread, at most ``max_threads`` at a time."""

    __slots__ = ("_limiter", "_loop", "_max_threads", "_unbounded")

    def __init__(self, max_threads: int) -> None:
        self._max_threads = max_threads
        self._loop: object = None
        self._limiter = anyio.CapacityLimiter(max_threads)
        # The real bound is self._limiter, held around the whole call so that
        # an abandoned thread keeps its token until it has returned.
        self._unbounded = anyio.CapacityLimiter(math.inf)

    def _bind(self) -> anyio.CapacityLimiter:
        # A limiter belongs to the event loop that first waits on it. An adapter
        # that outlives its loop (a module-level app served by asyncio and then
        # trio, a server restarted in-process) gets fresh limiters on the new one.
        loop = anyio.lowlevel.current_token().native_token
        if loop is not self._loop:
            self._loop = loop
            self._limiter = anyio.CapacityLimiter(self._max_threads)
            self._unbounded = anyio.CapacityLimiter(math.inf)
        return self._limiter

    async def run(self, fn: Callable[[_Exchange], T], exchange: _Exchange) -> T:
        async with self._bind():
            exchange.worker_running = True
            try:
                # abandon_on_cancel: we must hear about a cancellation while the
                # worker is blocked, so that we can wake it (rule 3).
                return await anyio.to_thread.run_sync(
                    _in_worker, fn, exchange, abandon_on_cancel=True, limiter=self._unbounded
                )
            except anyio.get_cancelled_exc_class():
                await exchange.stop_worker("the request task was cancelled")
                raise

    async def run_plain(self, fn: Callable[[], object]) -> None:
        await anyio.to_thread.run_sync(fn, limiter=self._bind())

    def call_async(self, exchange: _Exchange, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        try:
            return anyio.from_thread.run(exchange.crossing, fn, *args)
        except Exception:
            raise
        except BaseException as exc:
            # trio runs from_thread.run in the host task's cancel context, so
            # cancelling the request task cancels the crossing with trio.Cancelled;
            # asyncio may hand back CancelledError. Either way the request is over.
            if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
                raise
            raise ClientDisconnected("the request task was cancelled") from exc


class _Exchange(ResponseState):
    """One request/response: ``start_response`` and ``write`` for the app, plus the
    state both sides of the boundary share."""

    __slots__ = (
        "_done_event",
        "_scope",
        "abort_reason",
        "app",
        "chunks",
        "closed",
        "disconnected",
        "environ",
        "executor",
        "file_path",
        "input",
        "iterator",
        "max_body_size",
        "method",
        "receive",
        "received",
        "result",
        "scope",
        "send",
        "worker_running",
        "wrote",
    )

    def __init__(self, adapter: WsgiToAsgi, scope: Scope, receive: Receive, send: Send) -> None:
        super().__init__()
        self.app = adapter.app
        self.executor: _Executor = adapter._executor
        self.max_body_size = adapter.max_body_size
        self.scope = scope
        self.method: str = scope["method"]
        self.receive = receive
        self.send = send
        self.environ: Environ = {}
        self.input: StreamingInput | None = None
        self.received = 0
        self.result: object = None
        self.iterator: Iterator[bytes] | None = None
        self.chunks: list[bytes] = []
        self.file_path = ""
        self.closed = False
        self.wrote = False
        self.disconnected = False
        self.abort_reason: str | None = None
        self.worker_running = False
        self._scope: anyio.CancelScope | None = None
        self._done_event: anyio.Event | None = None

    # -- loop side ---------------------------------------------------------

    async def crossing(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await fn(*args)`` for the sync side, inside a scope :meth:`abort` cancels."""
        if self.abort_reason is not None:
            raise ClientDisconnected(self.abort_reason)
        with anyio.CancelScope() as scope:
            self._scope = scope
            try:
                return await fn(*args)
            except OSError as exc:
                # ASGI www §Disconnected Client: send() raises OSError once the
                # client is gone. Remember it, so the worker can tell it apart
                # from an OSError of the app's own.
                self.disconnected = True
                if self.abort_reason is None:
                    self.abort_reason = f"the client disconnected: {exc!r}"
                raise
            finally:
                self._scope = None
        raise ClientDisconnected(self.abort_reason or "the request was aborted")

    def abort(self, reason: str) -> None:
        """Wake the sync side: cancel its pending crossing and fail every later one."""
        if self.abort_reason is None:
            self.abort_reason = reason
        if self._scope is not None:
            self._scope.cancel()

    async def stop_worker(self, reason: str) -> None:
        """Abort, then wait (shielded from cancellation) until the worker has returned."""
        self.abort(reason)
        # Dekker-style handshake without a lock: each side writes its own
        # field, then reads the other's; at least one sees the other's write.
        event = self._done_event = anyio.Event()
        if self.worker_running:
            with anyio.CancelScope(shield=True):
                await event.wait()

    # -- sync side ---------------------------------------------------------

    def worker_finished(self) -> None:
        """Called by the worker as its very last step (see :meth:`stop_worker`)."""
        self.worker_running = False
        event = self._done_event
        if event is not None:
            try:
                anyio.from_thread.run_sync(event.set)
            except Exception:  # the loop is gone: nobody is waiting any more
                logger.debug("could not signal the end of an abandoned worker", exc_info=True)

    def write(self, data: bytes) -> None:
        """PEP 3333 §The write() Callable (B13): send ``data`` now, before the iterable.

        :raises AppProtocolError: before a successful ``start_response``, or
            for data that is not ``bytes``.
        :raises ClientDisconnected: if the client has gone.
        """
        if self.status == 0:
            raise AppProtocolError("write() called before start_response()")
        if type(data) is not bytes:
            data = check_body_chunk(data)
        self.wrote = True
        if self.body_complete(self.method):
            return  # B14: past the declared Content-Length, drop it
        self.push(data)

    def push(self, chunk: bytes) -> None:
        """Send ``chunk`` (and the start message first, if still due); block until sent."""
        chunk = self.clip(chunk, self.method)
        start = None
        if not self.headers_sent:
            start = self.start_message()
            self.headers_sent = True
        if start is not None or chunk:
            self.executor.call_async(self, _send_start_and_chunk, self, start, chunk)

    def pull(self) -> tuple[bytes, bool]:
        """The blocking ``pull`` of :class:`StreamingInput` (lazy ``wsgi.input``)."""
        return self.executor.call_async(self, _receive_chunk, self)


async def _send_start_and_chunk(exchange: _Exchange, start: Message | None, chunk: bytes) -> None:
    send = exchange.send
    if start is not None:
        await send(start)
    if chunk:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def _receive_chunk(exchange: _Exchange) -> tuple[bytes, bool]:
    message = await exchange.receive()
    kind = message["type"]
    if kind == "http.request":
        # D3: a missing body is b"", a missing more_body is False.
        body: bytes = message.get("body", b"")
        exchange.received += len(body)
        limit = exchange.max_body_size
        if limit is not None and exchange.received > limit:
            raise ServerProtocolError(
                f"request body larger than max_body_size={limit}", status_hint=413
            )
        return body, bool(message.get("more_body", False))
    if kind == "http.disconnect":
        exchange.disconnected = True
        raise ClientDisconnected("the client disconnected before the request body ended")
    raise ServerProtocolError(f"unexpected ASGI message {kind!r} while reading the request body")


def _close_result(exchange: _Exchange) -> None:
    """B15: call close() on the object the app returned, exactly once (sync side)."""
    if exchange.closed:
        return
    exchange.closed = True
    close = getattr(exchange.result, "close", None)
    if close is not None:
        close()


def _check_started(exchange: _Exchange) -> None:
    # B12: the body (or its end) came, and start_response never succeeded.
    if exchange.status == 0:
        raise AppProtocolError("the application produced a body without calling start_response()")


def _collect(exchange: _Exchange, items: Iterable[object]) -> None:
    """Fast path: the whole body is in memory; clip it and keep the non-empty chunks."""
    method = exchange.method
    chunks = exchange.chunks
    total = 0
    for item in items:
        chunk = check_body_chunk(item)
        if chunk:
            _check_started(exchange)
            chunks.append(chunk)
            total += len(chunk)
    _check_started(exchange)
    if not exchange.wrote and not exchange.headers_sent:
        # B16: a list's length is exact, so declare it (saves the server a
        # chunked encoding). Not for HEAD/204/304 (B18).
        exchange.add_content_length(total, method)
    kept = []
    for chunk in chunks:
        chunk = exchange.clip(chunk, method)
        if chunk:
            kept.append(chunk)
        if exchange.body_complete(method):
            break
    exchange.chunks = kept


def _file_plan(exchange: _Exchange, wrapper: FileWrapper) -> int | None:
    """Send a ``wsgi.file_wrapper`` result without reading it, if the server allows (A26)."""
    extensions = exchange.scope.get("extensions") or {}
    if exchange.wrote or exchange.status == 0 or is_bodiless(exchange.status, exchange.method):
        return None
    if _PATHSEND_EXT not in extensions and _ZEROCOPY_EXT not in extensions:
        return None
    regular = wrapper.regular_file()
    if regular is None:
        return None
    _fd, position, size = regular
    remaining = max(size - position, 0)
    declared = exchange.content_length
    if declared is not None and declared > remaining:
        return None  # a short body: stream it, so B14 notices and aborts
    if _PATHSEND_EXT in extensions and position == 0 and declared in (None, size):
        # ASGI extensions §Path Send: the whole file, no slicing.
        path = wrapper.source_path()
        if path is not None:
            exchange.add_content_length(size, exchange.method)
            exchange.file_path = path
            return _PATHSEND
    if _ZEROCOPY_EXT in extensions:
        # ASGI extensions §Zero Copy Send: offset=tell(), count up to the
        # declared length; the server must not close the file, we do.
        count = remaining if declared is None else declared
        exchange.add_content_length(count, exchange.method)
        start = exchange.start_message()
        exchange.headers_sent = True
        message = {
            "type": "http.response.zerocopysend",
            "file": wrapper.filelike,
            "offset": position,
            "count": count,
            "more_body": False,
        }
        exchange.sent = count
        exchange.executor.call_async(exchange, _send_start_and_message, exchange, start, message)
        return _FINISHED
    return None


async def _send_start_and_message(exchange: _Exchange, start: Message, message: Message) -> None:
    await exchange.send(start)
    await exchange.send(message)


def _call_app(exchange: _Exchange) -> int:
    """Phase 1 (sync side): call the app; collect an in-memory body, or pull one chunk."""
    keep_open = False
    try:
        # B1: positional arguments; the exchange is start_response.
        result = exchange.app(exchange.environ, exchange)
        exchange.result = result
        kind = type(result)
        if kind is list or kind is tuple:
            _collect(exchange, result)
            return _COLLECTED
        if kind is FileWrapper:
            plan = _file_plan(exchange, result)  # type: ignore[arg-type]
            if plan is not None:
                return plan
        if exchange.empty_body_allows_start() and not exchange.headers_sent:
            exchange.push(b"")  # B7: Content-Length: 0 may start at once
        iterator = iter(result)
        exchange.iterator = iterator
        for item in iterator:
            chunk = check_body_chunk(item)
            if chunk:
                _check_started(exchange)
                chunk = exchange.clip(chunk, exchange.method)
                if chunk:
                    exchange.chunks.append(chunk)
                # B10: this chunk goes out before the next is pulled (phase 2).
                keep_open = not exchange.body_complete(exchange.method)
                return _STREAMING if keep_open else _COLLECTED
            if exchange.empty_body_allows_start() and not exchange.headers_sent:
                exchange.push(b"")
        _check_started(exchange)
        return _COLLECTED
    except OSError:
        if exchange.disconnected:
            return _GONE
        raise
    finally:
        if not keep_open:
            _close_result(exchange)


def _iterate_rest(exchange: _Exchange) -> int:
    """Phase 2 (sync side): send the remaining chunks one by one, then close()."""
    method = exchange.method
    iterator = exchange.iterator
    assert iterator is not None
    try:
        for item in iterator:
            chunk = check_body_chunk(item)
            if chunk or (exchange.empty_body_allows_start() and not exchange.headers_sent):
                exchange.push(chunk)
            if exchange.body_complete(method):
                break  # B14: truncate at the declared Content-Length, stop
        return _STREAMED
    except OSError:
        if exchange.disconnected:
            return _GONE  # B19: swallow the server's OSError
        raise
    finally:
        _close_result(exchange)


def _close_only(exchange: _Exchange) -> None:
    _close_result(exchange)


_BODY_END: Message = {"type": "http.response.body", "body": b"", "more_body": False}


async def _send_error(send: Send, status: int) -> None:
    """A plain-text error response (400/413/500) before anything else was sent."""
    phrase = {400: b"Bad Request", 413: b"Content Too Large"}.get(status, b"Internal Server Error")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"%d" % len(phrase)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": phrase, "more_body": False})


async def _watch_disconnect(exchange: _Exchange) -> None:
    """B19: while the worker streams, an ``http.disconnect`` aborts it."""
    try:
        while True:
            message = await exchange.receive()
            kind = message["type"]
            if kind == "http.disconnect":
                exchange.disconnected = True
                exchange.abort("the client disconnected")
                return
            # Nothing else may come once the body has ended (ASGI www
            # §Request); don't spin on a server that says otherwise.
            logger.debug("ignoring ASGI message %r after the request body", kind)
            return
    except Exception:
        # receive() failing is the server's business; the response may go on.
        logger.debug("receive() failed while watching for a disconnect", exc_info=True)


class WsgiToAsgi:
    """An ASGI application that serves a WSGI application (SPEC sections A, B).

    :param app: the WSGI application, called as ``app(environ, start_response)``.
    :param max_threads: how many requests may run the app at once (worker
        threads of this adapter); default 40.
    :param executor: where the app runs; only ``"thread"`` today.
    :param body_buffer_size: a pre-read request body stays in memory up to this
        many bytes and spills to a temp file beyond (default 1 MiB).
    :param max_body_size: larger request bodies get a 413 and the app is not
        called (when ``Content-Length`` announces it, or while reading).
        ``None`` (default): no limit.
    :param stream_request_body: ``False`` (default) reads the whole body before
        calling the app; ``True`` gives the app a lazy ``wsgi.input`` that pulls
        from ``receive()`` as it reads.
    :param on_startup: a blocking callable run in a worker thread on
        ``lifespan.startup``; an exception becomes ``lifespan.startup.failed``.
    :param on_shutdown: the same for ``lifespan.shutdown``.
    :param multiprocess: the value of ``wsgi.multiprocess`` (default ``True``).
    :raises ValueError: for an unknown executor or a non-positive size.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        max_threads: int | None = None,
        executor: Literal["thread"] = "thread",
        body_buffer_size: int = BODY_BUFFER_SIZE,
        max_body_size: int | None = None,
        stream_request_body: bool = False,
        on_startup: Callable[[], object] | None = None,
        on_shutdown: Callable[[], object] | None = None,
        multiprocess: bool = True,
    ) -> None:
        if executor != "thread":
            raise ValueError(f"unknown executor {executor!r}; expected 'thread'")
        threads = MAX_THREADS if max_threads is None else max_threads
        if threads < 1:
            raise ValueError(f"max_threads must be at least 1, got {threads}")
        if body_buffer_size < 0:
            raise ValueError(f"body_buffer_size must be >= 0, got {body_buffer_size}")
        if max_body_size is not None and max_body_size < 0:
            raise ValueError(f"max_body_size must be >= 0, got {max_body_size}")
        self.app = app
        self.max_threads = threads
        self.body_buffer_size = body_buffer_size
        self.max_body_size = max_body_size
        self.stream_request_body = stream_request_body
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown
        self.multiprocess = multiprocess
        self._executor: _Executor = _ThreadExecutor(threads)
        self._errors = ErrorStream()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection (B21: ``async def``, so servers see ASGI 3).

        :raises ServerProtocolError: for an unknown scope type (B20) or an
            unexpected message while reading the request body (D3).
        :raises BaseException: what the app raised after the response started
            (B17), so that the server aborts the connection.
        """
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            # B20: WSGI has no WebSocket. Closing before accepting makes the
            # server answer the handshake with 403 (ASGI www §Close).
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.close", "code": 1008, "reason": ""})
        else:
            # ASGI main §Application: "actively reject" unknown scope types.
            raise ServerProtocolError(f"unsupported ASGI scope type {kind!r}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "lifespan.startup":
                hook, step = self.on_startup, "startup"
            elif kind == "lifespan.shutdown":
                hook, step = self.on_shutdown, "shutdown"
            else:
                raise ServerProtocolError(f"unexpected lifespan message {kind!r}")
            try:
                if hook is not None:
                    await self._executor.run_plain(hook)
            except Exception as exc:
                logger.exception("lifespan %s hook failed", step)
                text = str(exc) or type(exc).__name__
                await send({"type": f"lifespan.{step}.failed", "message": text})
            else:
                await send({"type": f"lifespan.{step}.complete"})
            if step == "shutdown":
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        exchange = _Exchange(self, scope, receive, send)
        body: RequestBody | None = None
        wsgi_input: Any
        if self.stream_request_body:
            wsgi_input = exchange.input = StreamingInput(exchange.pull)
        else:
            body = wsgi_input = RequestBody(self.body_buffer_size)
        try:
            try:
                exchange.environ = environ_from_scope(
                    scope,
                    wsgi_input,
                    self._errors,
                    file_wrapper=FileWrapper,
                    multiprocess=self.multiprocess,
                )
                length = exchange.environ.get("CONTENT_LENGTH")
                limit = self.max_body_size
                if limit is not None and length is not None and int(length) > limit:
                    raise ServerProtocolError(
                        f"Content-Length {length} exceeds max_body_size={limit}", status_hint=413
                    )
                if body is not None:
                    if not await self._read_body(body, receive):
                        return  # the client left before the body ended: nobody to answer
                    exchange.environ["wsgi.input"] = body.finish()
            except ServerProtocolError as exc:
                if exc.status_hint >= 500:
                    raise
                logger.info("rejected request: %s", exc)
                await _send_error(send, exc.status_hint)
                return
            await self._respond(exchange)
        finally:
            if body is not None:
                body.close()

    async def _read_body(self, body: RequestBody, receive: Receive) -> bool:
        """Read the whole request body on the loop (D3); False if the client left."""
        limit = self.max_body_size
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "http.request":
                chunk = message.get("body", b"")
                if body.append(chunk):
                    await anyio.to_thread.run_sync(body.spill)
                if limit is not None and body.size > limit:
                    raise ServerProtocolError(
                        f"request body larger than max_body_size={limit}", status_hint=413
                    )
                if not message.get("more_body", False):
                    if body.needs_spill():
                        await anyio.to_thread.run_sync(body.spill)
                    return True
            elif kind == "http.disconnect":
                return False
            else:
                raise ServerProtocolError(
                    f"unexpected ASGI message {kind!r} while reading the request body",
                    status_hint=500,
                )

    async def _respond(self, exchange: _Exchange) -> None:
        executor = self._executor
        try:
            outcome = await executor.run(_call_app, exchange)
        except Exception as exc:
            await self._failed(exchange, exc)
            return
        if outcome == _COLLECTED:
            await self._send_collected(exchange)
        elif outcome == _PATHSEND:
            await self._send_quietly(
                exchange,
                exchange.start_message(),
                {"type": "http.response.pathsend", "path": exchange.file_path},
            )
        elif outcome == _STREAMING:
            await self._stream(exchange)

    async def _send_quietly(self, exchange: _Exchange, *messages: Message) -> bool:
        """Send ``messages``; False (and no exception) if the client has gone (B19)."""
        send = exchange.send
        try:
            for message in messages:
                await send(message)
        except OSError:
            logger.debug("client disconnected while sending the response", exc_info=True)
            exchange.disconnected = True
            return False
        return True

    async def _send_collected(self, exchange: _Exchange) -> None:
        """Send a body collected by the worker; the result is already closed."""
        messages: list[Message] = []
        if not exchange.headers_sent:
            exchange.headers_sent = True
            messages.append(exchange.start_message())
        short = exchange.short_by(exchange.method)
        chunks = exchange.chunks
        for chunk in chunks:
            messages.append({"type": "http.response.body", "body": chunk, "more_body": True})
        if short:
            await self._send_quietly(exchange, *messages)
            self._abort_short(exchange, short)
        if chunks:
            messages[-1]["more_body"] = False  # the last chunk ends the body
        else:
            messages.append(dict(_BODY_END))
        await self._send_quietly(exchange, *messages)

    def _abort_short(self, exchange: _Exchange, short: int) -> None:
        # B14 (PEP 3333 §Handling the Content-Length Header): a body shorter
        # than declared must not look complete; raise so the server aborts.
        message = (
            f"response body is {short} bytes shorter than its Content-Length "
            f"{exchange.content_length}; aborting the connection"
        )
        logger.error(message)
        raise AppProtocolError(message)

    async def _stream(self, exchange: _Exchange) -> None:
        """Phase 2: the first chunk is in hand; iterate the rest in the worker."""
        messages: list[Message] = []
        if not exchange.headers_sent:
            exchange.headers_sent = True
            messages.append(exchange.start_message())
        body = {"type": "http.response.body", "body": exchange.chunks[0], "more_body": True}
        messages.append(body)
        exchange.chunks = []
        executor = self._executor
        try:
            sent = await self._send_quietly(exchange, *messages)
        except BaseException:
            # Cancelled between the two hops: close() must still run (B15).
            with anyio.CancelScope(shield=True):
                await executor.run(_close_only, exchange)
            raise
        if not sent:
            await executor.run(_close_only, exchange)
            return
        error: Exception | None = None
        outcome = _GONE
        async with anyio.create_task_group() as group:
            streaming_input = exchange.input
            if streaming_input is None or streaming_input.at_eof:
                # receive() is free: the body has been read (B19).
                group.start_soon(_watch_disconnect, exchange)
            try:
                outcome = await executor.run(_iterate_rest, exchange)
            except Exception as exc:
                # Raised outside the task group, so the app's exception
                # reaches the server unchanged (not in an ExceptionGroup).
                error = exc
            group.cancel_scope.cancel()
        if error is not None:
            await self._failed(exchange, error)
            return
        if outcome == _GONE or exchange.disconnected:
            return
        short = exchange.short_by(exchange.method)
        if short:
            self._abort_short(exchange, short)
        await self._send_quietly(exchange, dict(_BODY_END))

    async def _failed(self, exchange: _Exchange, exc: Exception) -> None:
        """The app (or our stream under it) raised; the result is already closed."""
        if exchange.disconnected or (
            isinstance(exc, ClientDisconnected) and exchange.abort_reason is not None
        ):
            # B19: the client is gone; there is nobody to tell.
            logger.debug("request ended by a disconnect", exc_info=exc)
            return
        if exchange.headers_sent:
            # B17 (PEP 3333 §Error Handling; ASGI main §Error Handling): too
            # late for a 500; re-raise so the server aborts the connection,
            # never faking more_body=False.
            raise exc
        if isinstance(exc, ServerProtocolError) and exc.status_hint < 500:
            # Raised by our lazy wsgi.input through the app (413, bad message).
            logger.info("rejected request: %s", exc)
            status = exc.status_hint
        else:
            # B17: before headers, a 500, and the traceback on the "bridge" logger.
            logger.exception("WSGI application raised before the response started", exc_info=exc)
            status = 500
        exchange.headers_sent = True
        try:
            await _send_error(exchange.send, status)
        except OSError:
            logger.debug("client disconnected before the error response", exc_info=True)
