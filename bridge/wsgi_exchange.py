"""One W→A request/response: the state both sides share, and the app's sync side.

Rules:
1. :class:`_Exchange` *is* the ``start_response`` handed to the app
   (:class:`~bridge.wsgi_response.ResponseState`) and carries ``write``; it is
   shared by the loop side (:mod:`bridge.wsgi_to_asgi`) and the sync side
   (the functions below, run by an executor of :mod:`bridge.wsgi_executors`).
2. :func:`_call_app` is the whole sync side of a request, in one go: call the
   app, then either collect an in-memory body (``list``/``tuple``: the loop
   sends it, with ``Content-Length``, B16), plan a file send, or iterate and
   emit each chunk through the executor, and finally the closing message.
3. ``close()`` of the object the app returned runs exactly once, on the sync
   side, on every path (B15): ``_close_result`` is the only caller.
4. Every wait across the boundary has a way out: ``call_async`` runs inside a
   cancel scope that :meth:`_Exchange.abort` cancels, and ``abort`` also makes
   the outbox (thread executor) raise :class:`ClientDisconnected` in the
   worker, so a blocked app wakes at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.lowlevel

from bridge.errors import AppProtocolError, ClientDisconnected, ServerProtocolError
from bridge.types import Environ, Message, Receive, Scope, Send
from bridge.wsgi_io import FileWrapper, StreamingInput
from bridge.wsgi_outbox import Outbox
from bridge.wsgi_response import ResponseState, check_body_chunk, is_bodiless

if TYPE_CHECKING:
    from bridge.wsgi_executors import Executor
    from bridge.wsgi_to_asgi import WsgiToAsgi

__all__: list[str] = []

logger = logging.getLogger("bridge")

T = TypeVar("T")

# What the sync side returns to the loop side.
_COLLECTED = 0  # the whole body is in exchange.chunks; result already closed
_PATHSEND = 1  # send exchange.file_path with http.response.pathsend; result closed
_FINISHED = 2  # everything, final message included, was emitted
_STREAMED = 3  # every chunk was emitted, and the body is short of its Content-Length
_GONE = 4  # the client disconnected; result closed, nothing more to send

_PATHSEND_EXT = "http.response.pathsend"
_ZEROCOPY_EXT = "http.response.zerocopysend"


class _Exchange(ResponseState):
    """One request/response: ``start_response`` and ``write`` for the app, plus the
    state both sides of the boundary share."""

    __slots__ = (
        "_scope",
        "abort_reason",
        "app",
        "chunks",
        "closed",
        "disconnected",
        "ending",
        "environ",
        "executor",
        "file_path",
        "input",
        "max_body_size",
        "method",
        "outbox",
        "pushes",
        "receive",
        "received",
        "result",
        "scope",
        "send",
        "token",
        "watching",
        "wrote",
    )

    def __init__(self, adapter: WsgiToAsgi, scope: Scope, receive: Receive, send: Send) -> None:
        super().__init__()
        self.app = adapter.app
        self.executor: Executor = adapter._executor
        self.max_body_size = adapter.max_body_size
        self.scope = scope
        self.method: str = scope["method"]
        self.receive = receive
        self.send = send
        self.environ: Environ = {}
        self.input: StreamingInput | None = None
        self.received = 0
        self.result: object = None
        self.chunks: list[bytes] = []
        self.file_path = ""
        self.closed = False
        self.wrote = False
        self.disconnected = False
        self.watching = False
        self.pushes = 0  # body chunks emitted so far
        self.ending = False  # the final message is being emitted
        self.abort_reason: str | None = None
        self.outbox: Outbox | None = None  # thread executor only
        self.token: Any = None  # thread executor only: anyio's token of the loop
        self._scope: anyio.CancelScope | None = None

    # -- loop side ---------------------------------------------------------

    async def crossing(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await fn(*args)`` for the sync side, inside a scope :meth:`abort` cancels."""
        if self.abort_reason is not None:
            raise ClientDisconnected(self.abort_reason)
        with self.guarded():
            try:
                return await fn(*args)
            except OSError as exc:
                self.send_failed(exc)
                raise
        raise ClientDisconnected(self.abort_reason or "the request was aborted")

    def send_failed(self, exc: OSError) -> None:
        """Record that ``send()`` raised ``exc``: the client is gone.

        ASGI www §Disconnected Client: send() raises OSError once the client
        is gone. Remembered, so the sync side can tell it apart from an
        OSError of the app's own.
        """
        self.disconnected = True
        if self.abort_reason is None:
            self.abort_reason = f"the client disconnected: {exc!r}"

    def abort(self, reason: str) -> None:
        """Wake the sync side: cancel its pending crossing and fail every later one."""
        if self.abort_reason is None:
            self.abort_reason = reason
        if self._scope is not None:
            self._scope.cancel()
        if self.outbox is not None:
            self.outbox.abort(self.abort_reason)

    def guarded(self) -> _Guarded:
        """``with exchange.guarded():`` a cancel scope over the block that :meth:`abort` cancels.

        The executors' crossings skip their own scope; while the disconnect
        watcher runs, one scope covers them all. A cancelled block ends
        quietly: the code after the ``with`` then runs.
        """
        return _Guarded(self)

    def can_watch(self) -> bool:
        """Whether to start the disconnect watcher now (a streamed response in progress).

        Only once headers went out and ``receive()`` is free: the request body
        has been read, so the next message can only be ``http.disconnect``.
        """
        if self.watching or self.ending or not self.headers_sent or self.abort_reason is not None:
            return False
        streaming_input = self.input
        return streaming_input is None or streaming_input.at_eof

    async def watch_disconnect(self) -> None:
        """B19: while the app streams, an ``http.disconnect`` aborts it."""
        self.watching = True
        try:
            message = await self.receive()
            kind = message["type"]
            if kind == "http.disconnect":
                self.disconnected = True
                self.abort("the client disconnected")
                return
            # Nothing else may come once the body has ended (ASGI www
            # §Request); don't spin on a server that says otherwise.
            logger.debug("ignoring ASGI message %r after the request body", kind)
        except Exception:
            # receive() failing is the server's business; the response may go on.
            logger.debug("receive() failed while watching for a disconnect", exc_info=True)

    # -- sync side ---------------------------------------------------------

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
        """Emit ``chunk`` (and the start message first, if still due)."""
        method = self.method
        chunk = self.clip(chunk, method)
        start = None
        if not self.headers_sent:
            start = self.start_message()
            self.headers_sent = True
        if chunk and not self.ending and self.body_complete(method):
            # B14: this chunk reaches the declared Content-Length, so it ends
            # the body. Say so now: one message (and, for the greenlet, one
            # switch to the loop) fewer than a separate empty final body.
            # (Content-Length: 0 still starts early with no body, B7.)
            self.ending = True
            self.pushes += 1
            self.executor.emit(
                self, start, {"type": "http.response.body", "body": chunk, "more_body": False}
            )
            return
        if start is not None or chunk:
            self.pushes += 1
            self.executor.emit(self, start, chunk)

    def push_end(self) -> None:
        """Emit the final empty body (and the start message first, if still due).

        A no-op if :meth:`push` already ended the body at its Content-Length.
        """
        if self.ending:
            return
        self.ending = True  # no watcher for the last message
        start = None
        if not self.headers_sent:
            start = self.start_message()
            self.headers_sent = True
        self.executor.emit(
            self, start, {"type": "http.response.body", "body": b"", "more_body": False}
        )

    def pull(self) -> tuple[bytes, bool]:
        """The blocking ``pull`` of :class:`StreamingInput` (lazy ``wsgi.input``)."""
        return self.executor.call_async(self, _receive_chunk, self)


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


class _Guarded:
    """What :meth:`_Exchange.guarded` returns (a class: its ``__exit__`` may swallow)."""

    __slots__ = ("_exchange", "_scope")

    def __init__(self, exchange: _Exchange) -> None:
        self._exchange = exchange
        self._scope = anyio.CancelScope()

    def __enter__(self) -> None:
        self._scope.__enter__()
        self._exchange._scope = self._scope

    def __exit__(self, *exc_info: Any) -> bool:
        self._exchange._scope = None
        return bool(self._scope.__exit__(*exc_info))


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
        # Not emit(): the file must stay open until send() has returned, so
        # wait for it (nothing else was emitted before: no write(), no chunk).
        exchange.executor.call_async(exchange, _send_start_and_message, exchange, start, message)
        return _FINISHED
    return None


async def _send_start_and_message(exchange: _Exchange, start: Message, message: Message) -> None:
    await exchange.send(start)
    await exchange.send(message)


def _call_app(exchange: _Exchange) -> int:
    """The sync side of one request (rule 2): call the app and emit its response."""
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
        method = exchange.method
        if exchange.empty_body_allows_start() and not exchange.headers_sent:
            exchange.push(b"")  # B7: Content-Length: 0 may start at once
        for item in result:
            chunk = check_body_chunk(item)
            if chunk:
                _check_started(exchange)
                # B10: emitted (sent, or queued within send_buffer) before the next pull.
                exchange.push(chunk)
                if exchange.body_complete(method):
                    break  # B14: truncate at the declared Content-Length, stop
            elif exchange.empty_body_allows_start() and not exchange.headers_sent:
                exchange.push(b"")
        _check_started(exchange)
        if exchange.short_by(method):
            return _STREAMED  # B14: the loop side logs and aborts
        exchange.push_end()
        return _FINISHED
    except OSError:
        if exchange.disconnected:
            return _GONE  # B19: swallow the server's OSError
        raise
    finally:
        _close_result(exchange)
