"""``WsgiToAsgi``: serve a WSGI application from an ASGI server (SPEC B1–B21, D3).

Rules:
1. The WSGI app, its iteration and its ``close()`` run on the *sync side*,
   never as a blocking call on the loop (B1): in a worker thread (the default
   executor) or in a greenlet the request task drives (``executor="greenlet"``).
   The two sides meet only through the executor seam of
   :mod:`bridge.wsgi_executors`; the request state both share is the
   :class:`~bridge.wsgi_exchange._Exchange`.
2. One hop per request: the sync side runs the whole response (call, iterate,
   ``close()``). A ``list``/``tuple`` body comes back collected and leaves in
   one go, with ``Content-Length`` (B16); any other iterable is emitted chunk
   by chunk as the app produces it: sent one at a time (greenlet), or queued
   within ``send_buffer`` bytes and coalesced by the loop (thread,
   :mod:`bridge.wsgi_outbox`).
3. Every exit leaves the sync side finished: the loop aborts it when ``send``
   raises ``OSError``, when ``receive`` reports ``http.disconnect``, and when
   the server cancels the request task; it then waits (shielded) for
   ``close()`` to have run, so threads and limiter tokens go back.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any, Literal

import anyio
import anyio.to_thread

from bridge.environ import environ_from_scope
from bridge.errors import AppProtocolError, ClientDisconnected, ServerProtocolError
from bridge.types import Message, Receive, Scope, Send, WSGIApp
from bridge.wsgi_exchange import (
    _COLLECTED,
    _PATHSEND,
    _STREAMED,
    _call_app,
    _Exchange,
)
from bridge.wsgi_executors import Executor, ThreadExecutor
from bridge.wsgi_greenlet import GreenletExecutor
from bridge.wsgi_io import BODY_BUFFER_SIZE, ErrorStream, FileWrapper, RequestBody, StreamingInput

__all__ = ["WsgiToAsgi"]

logger = logging.getLogger("bridge")

#: Default number of worker threads per adapter (the size of anyio's default
#: limiter, and of asgiref's and a2wsgi's pools).
MAX_THREADS = 40

#: Default body bytes a worker thread may produce ahead of ``send`` (512 KiB).
#: Each time the worker runs out of room, one wake-up of the worker and one of
#: the loop follow, about 30 µs each on a 2-core VM; a larger buffer means
#: fewer of them per MiB. Measured with wrk on uvicorn and granian: over
#: 256 KiB, a 1 MiB download in 64 KiB chunks gains 15-20% MiB/s and an
#: 8 MiB one 10%, while streams of 4 KiB and 256-byte chunks are unchanged;
#: 1 MiB would gain a little more on downloads but cost 4 KiB streams on
#: uvicorn a quarter. Memory stays bounded: a request holds its limiter token
#: until its queue is sent, so at most ``max_threads`` queues exist
#: (20 MiB with the defaults).
SEND_BUFFER = 512 * 1024

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


class WsgiToAsgi:
    """An ASGI application that serves a WSGI application (SPEC sections A, B).

    **Executors.** ``executor="thread"`` (the default) runs each request's app
    call, iteration and ``close()`` in a worker thread, at most
    ``max_threads`` at once: right for any app, including those that block
    (sync database drivers, ``time.sleep``, blocking HTTP clients, file I/O).
    A response costs one hop into the thread and, when small, one wake-up of
    the loop back; a streamed body is queued up to ``send_buffer`` bytes
    ahead of ``send``, and chunks found queued together leave as one
    ``http.response.body`` (at most ``send_buffer`` bytes; nothing is held
    back waiting for more). That is a deliberate departure from SPEC B10's
    one message per chunk: bytes, order and bounded memory are kept, message
    boundaries are not.

    ``executor="greenlet"`` runs the app *inline*, on the event loop's thread,
    in a greenlet: every blocking point the adapter controls (a lazy
    ``wsgi.input`` read, each response chunk, ``write()``) switches back to the
    request task, which awaits ``receive``/``send``; no thread hop, one chunk
    in flight (B10 to the letter), and the app sees the server task's context
    variables. It is right only when handlers never block on anything else:
    no sync database drivers, no ``time.sleep``, no blocking HTTP or file
    I/O, no long CPU work; any of these stalls *every* request of the
    process. Use it for CPU-light apps that answer from memory or through
    greenlet-aware I/O, and run several server workers (``--workers``) to use
    more than one core. ``max_threads`` does not limit it. Lifespan hooks
    still run in a worker thread (they typically block: connections,
    migrations).

    :param app: the WSGI application, called as ``app(environ, start_response)``.
    :param max_threads: how many requests may run the app at once (worker
        threads of this adapter; thread executor); default 40.
    :param executor: ``"thread"`` (default) or ``"greenlet"``, see above.
    :param send_buffer: thread executor: body bytes a worker may produce
        ahead of ``send`` before it blocks (backpressure), and the largest
        coalesced body message; default 512 KiB. ``0`` sends each chunk before
        the next is pulled.
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
    :raises ImportError: for ``executor="greenlet"`` without the greenlet package.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        max_threads: int | None = None,
        executor: Literal["thread", "greenlet"] = "thread",
        send_buffer: int = SEND_BUFFER,
        body_buffer_size: int = BODY_BUFFER_SIZE,
        max_body_size: int | None = None,
        stream_request_body: bool = False,
        on_startup: Callable[[], object] | None = None,
        on_shutdown: Callable[[], object] | None = None,
        multiprocess: bool = True,
    ) -> None:
        if executor not in ("thread", "greenlet"):
            raise ValueError(f"unknown executor {executor!r}; expected 'thread' or 'greenlet'")
        if send_buffer < 0:
            raise ValueError(f"send_buffer must be >= 0, got {send_buffer}")
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
        self.executor = executor
        self.send_buffer = send_buffer
        self._executor: Executor
        if executor == "greenlet":
            self._executor = GreenletExecutor()
        else:
            self._executor = ThreadExecutor(threads, send_buffer)
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
            wsgi_input = None  # set below, once the body has been read
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
                if wsgi_input is None:
                    first = await receive()
                    chunk = first.get("body", b"")
                    if (
                        first["type"] == "http.request"
                        and not first.get("more_body", False)
                        and len(chunk) <= self.body_buffer_size
                        and (limit is None or len(chunk) <= limit)
                    ):
                        # The whole body in one message (every GET), small
                        # enough to stay in memory: no buffer to manage.
                        exchange.environ["wsgi.input"] = io.BytesIO(chunk)
                    else:
                        body = RequestBody(self.body_buffer_size)
                        if not await self._read_body(body, receive, first):
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
            if exchange.input is not None:
                exchange.input.detach()  # rule 4 of bridge.wsgi_io: no cycle left behind

    async def _read_body(self, body: RequestBody, receive: Receive, message: Message) -> bool:
        """Read the request body on the loop from ``message`` on (D3); False if the client left."""
        limit = self.max_body_size
        while True:
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
            message = await receive()

    async def _respond(self, exchange: _Exchange) -> None:
        try:
            outcome = await self._executor.run(_call_app, exchange)
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
        elif outcome == _STREAMED and not exchange.disconnected:
            self._abort_short(exchange, exchange.short_by(exchange.method))
        # _FINISHED: the sync side emitted everything; _GONE: nobody to tell.

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
