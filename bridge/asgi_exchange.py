"""One request of ``AsgiToWsgi``: the ASGI app's ``receive``/``send`` on the
private loop, and the WSGI response iterable in the server's thread.

Rules of the thread/loop boundary:
1. The WSGI server's thread drives each request. It spawns the app task on the
   private loop once (one thread-safe wake-up, no waiting), then serves a
   ``queue.SimpleQueue`` the loop side fills: response messages to return or
   yield, and "read the body" requests, which it performs itself, because
   ``wsgi.input`` is blocking I/O that must never run on the loop (D1).
2. Wake-ups back to the loop (body chunks read, room in the send buffer, the
   client gone) go through the backend's own ``call_soon_threadsafe`` /
   ``run_sync_soon``, only when a loop-side task actually waits for them.
   A hello-world costs one hop each way: spawn, and one queue put that carries
   start and body together (:mod:`bridge.asgi_response` holds start until the
   first body, D16).
3. Request body (D1, :mod:`bridge.asgi_body`): nothing is read before the
   app's first ``receive()``; a read request makes the WSGI thread read the
   chunk the app waits for and then read ahead (bounded), so the following
   ``receive()`` calls are answered on the loop without a round trip.
4. Backpressure (D5): ``send()`` returns at once while the bytes handed over
   but not yet consumed by the WSGI server stay within ``send_buffer``; beyond
   that it waits until the server asks for the next chunk, which is when the
   previous one has been written, and is woken once the server has caught up
   to half of ``send_buffer``, so one wake-up lets it send several chunks.
   Each queued body message counts :data:`MESSAGE_COST` bytes more than its
   body, what its queue item costs beyond the bytes: an app sending tiny
   messages (a token stream) to a slow client would otherwise queue a
   hundred times the memory of its bytes within the same bound.
5. Disconnect (D7): an early ``close()`` of the iterable, or an early EOF of
   ``wsgi.input``, marks the client gone: ``receive()`` returns
   ``http.disconnect`` (after the chunks already read, for an early EOF),
   ``send()`` raises :class:`~bridge.ClientDisconnected`, and the app task is
   cancelled ``disconnect_grace`` seconds later unless it finished the
   response first. The task is cancelled through the loop's native handle
   (:attr:`bridge.loop.PrivateLoop.cancel_handle`), not an anyio
   ``CancelScope``, which would cost more than the rest of a small request.
6. Shared state between the two threads lives in :class:`Exchange` and
   changes under its lock; every loop-side wait is registered under that lock
   after checking ``_closed``, so no wake-up is lost. Waiters re-check their
   condition after waking.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any

from bridge.asgi_body import RequestBody, body_length, disconnect
from bridge.asgi_response import DATA, ERROR, NO_START, READ, READ_ITEM, ResponseItems, join_queued
from bridge.errors import ClientDisconnected
from bridge.loop import Disarm, PrivateLoop
from bridge.types import Environ, Message, Receive, Scope, Send, StartResponse
from bridge.wsgi_replies import error_response, no_start_response, path_response

if TYPE_CHECKING:
    from bridge.asgi_to_wsgi import AsgiToWsgi

__all__ = ["Exchange"]

logger = logging.getLogger("bridge.asgi_to_wsgi")

#: What a queued body message costs beyond its body bytes: its queue item (a
#: tuple) and the header of its bytes object, about 115 bytes on CPython 3.11
#: (measured with tracemalloc). Counted toward ``send_buffer`` (rule 4).
MESSAGE_COST = 128


class Exchange:
    """One request: ``receive``/``send`` on the loop, the WSGI iterable in the server thread.

    :param adapter: the :class:`~bridge.AsgiToWsgi` serving the request (its app and options).
    :param environ: the request's WSGI environ.
    :param scope: the ASGI scope built from it.
    :param loop: the running private loop.
    :raises ServerProtocolError: for an invalid ``CONTENT_LENGTH``.
    """

    __slots__ = (
        "_adapter",
        "_body",
        "_cancel",
        "_cancel_timer",
        "_closed",
        "_complete",
        "_environ",
        "_finished",
        "_first",
        "_held",
        "_items",
        "_length",
        "_lock",
        "_loop",
        "_queue",
        "_recv_event",
        "_request_done",
        "_scope",
        "_send_event",
        "_terminal_sent",
        "_unacked",
        "_wsgi_closed",
        "_yielded",
    )

    def __init__(
        self, adapter: AsgiToWsgi, environ: Environ, scope: dict[str, Any], loop: PrivateLoop
    ) -> None:
        self._adapter = adapter
        self._environ = environ
        self._scope = scope
        self._loop = loop
        self._queue: SimpleQueue[tuple[Any, ...]] = SimpleQueue()
        self._lock = threading.Lock()
        self._length = body_length(environ)
        # Shared (under _lock)
        self._closed = False  # the client is gone: send() raises
        self._wsgi_closed = False  # the WSGI side stopped reading the queue
        self._unacked = 0
        self._recv_event: Any = None
        self._send_event: Any = None
        self._body: RequestBody | None = None  # from the first receive() on (D1)
        # Loop side
        self._items = ResponseItems(scope)
        self._complete = False
        self._request_done = False
        self._terminal_sent = False
        self._cancel: Any = None  # the task's native cancel handle while it runs
        self._cancel_timer: Disarm | None = None
        # WSGI side
        self._finished = False
        self._first: bytes | None = None
        self._held: tuple[Any, ...] | None = None  # taken from the queue, to handle next
        self._yielded = 0

    # ------------------------------------------------------------ loop side

    async def run(self) -> None:
        """The app task; only cancellation (disconnect, loop shutdown) escapes."""
        try:
            with self._loop.cancel_handle() as handle:
                self._cancel = handle
                if self._closed:
                    self._cancel_after_grace()
                # Typed as returning object: D8 logs a non-None return.
                app: Callable[[Scope, Receive, Send], Awaitable[object]] = self._adapter.app
                result = await app(self._scope, self.receive, self.send)
                if result is not None:
                    # D8: "Non-None return -> log."
                    logger.warning("ASGI callable returned a non-None value: %r", result)
        except Exception as exc:
            self._fail(exc)
        finally:
            self._cancel = None
            timer = self._cancel_timer
            if timer is not None:
                self._cancel_timer = None
                timer.cancel()
            if not self._terminal_sent:
                self._finish_incomplete()

    def _cancel_after_grace(self) -> None:
        """D7: cancel the app task ``disconnect_grace`` seconds from now, once."""
        handle = self._cancel
        if handle is None or self._complete or self._cancel_timer is not None:
            return
        self._cancel_timer = self._loop.cancel_later(handle, self._adapter.disconnect_grace)

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
        self._put_terminal((ERROR, exc))

    def _finish_incomplete(self) -> None:
        if not self._items.started:
            self._put_terminal((NO_START,))
            return
        if not self._closed:
            # D8: "Start but no final body -> end the response and log."
            logger.warning("ASGI callable returned without completing the response")
        self._put_terminal(self._items.end())

    async def receive(self) -> Message:
        """ASGI ``receive``: the request body (D1), then ``http.disconnect`` (D2)."""
        if not self._request_done:
            if self._length == 0:
                # D1: no body (CONTENT_LENGTH missing, empty or 0): one message, no read.
                self._request_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await self._receive_body()
            if message["type"] != "http.request" or not message["more_body"]:
                self._request_done = True
            return message
        # D2: block until the response completes or the client disconnects.
        while not (self._complete or self._wsgi_closed):
            with self._lock:
                if self._closed:
                    break
                wait = self._recv_event = self._loop.new_event()
            await wait.wait()
        return {"type": "http.disconnect"}

    async def _receive_body(self) -> Message:
        """The next body message: from the read-ahead buffer, or after one read (rule 3)."""
        while True:
            with self._lock:
                if self._wsgi_closed or self._complete:
                    return disconnect()
                body = self._body
                if body is None:
                    # D1: the first read happens now, on the app's first receive().
                    chunk_size = self._adapter.chunk_size
                    stream = self._environ["wsgi.input"]
                    body = self._body = RequestBody(stream, self._length, chunk_size)
                message, ask = body.pop()
                if message is None:
                    if self._closed or body.exhausted:
                        return disconnect()
                    wait = self._recv_event = self._loop.new_event()
                    ask = body.ask()
                if ask:
                    self._queue.put(READ_ITEM)
            if message is not None:
                return message
            await wait.wait()

    async def send(self, message: Message) -> None:
        """ASGI ``send``: check the message (D4-D6) and hand it to the WSGI thread.

        :raises ClientDisconnected: once the client is gone (D7, spec 2.4).
        :raises AppProtocolError: for an invalid message or order (D6).
        """
        if self._closed:
            raise ClientDisconnected("the client disconnected")
        # None while there is nothing to hand over yet (start is held, D16).
        item = self._items.feed(message)
        if item is None:
            return
        done = item[2]
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
                self._unacked += len(item[1]) + MESSAGE_COST
                if self._unacked > self._adapter.send_buffer:
                    wait = self._send_event = self._loop.new_event()
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
        if recv is not None:
            recv.set()
        if send is not None:
            send.set()
        self._cancel_after_grace()

    # ------------------------------------------------------------ WSGI side

    def _wake(self, func: Any) -> None:
        try:
            self._loop.call_soon(func)
        except Exception:  # the loop is gone (stopped or shut down)
            logger.debug("bridge's loop is gone; cannot wake it", exc_info=True)

    def _serve_read(self) -> None:
        """Read body chunks in this (WSGI) thread: one for the waiter, then ahead (rule 3)."""
        body = self._body
        if body is None:  # never: receive() creates it before it asks
            return
        more = True
        while more:
            message = body.read()
            gone = message["type"] == "http.disconnect"
            with self._lock:
                if gone:
                    self._closed = True
                more = body.push(message, self._closed or self._complete)
                event, self._recv_event = self._recv_event, None
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
            if kind == DATA:
                _, data, done, start = item
                start_response(start.status_line, start.headers)
                if done:
                    self._finished = True
                    return [data] if data else []
                self._first = data
                return self
            if kind == READ:
                self._serve_read()
                continue
            if kind == ERROR:
                self._finished = True
                return error_response(start_response, item[1])
            if kind == NO_START:
                self._finished = True
                return no_start_response(start_response, self._closed)
            # PATH (D12)
            self._finished = True
            path, start = item[1], item[3]
            return path_response(
                self._environ, start_response, path, start, self._adapter.chunk_size
            )

    def __iter__(self) -> Exchange:
        return self

    def __next__(self) -> bytes:
        data = self._first
        if data is not None:
            self._first = None
            self._yielded = len(data) + MESSAGE_COST
            return data
        if self._finished:
            raise StopIteration
        if self._yielded:
            # The server asks for more: the previous chunk is written (D5).
            self._ack(self._yielded)
            self._yielded = 0
        get = self._queue.get
        while True:
            item, self._held = self._held or get(), None
            kind = item[0]
            if kind == DATA:
                data = item[1]
                count = 1
                if item[2]:
                    self._finished = True
                elif len(data) < self._adapter.chunk_size:
                    data, self._finished, self._held, count = join_queued(
                        self._queue, data, self._adapter.chunk_size
                    )
                if data:
                    self._yielded = len(data) + count * MESSAGE_COST
                    return data
                if self._finished:
                    raise StopIteration
            elif kind == READ:
                self._serve_read()
            else:
                # D9: after the body started, propagate so the server aborts.
                self._finished = True
                raise item[1]

    def _ack(self, size: int) -> None:
        with self._lock:
            self._unacked -= size
            event = self._send_event
            if event is None or self._unacked > self._adapter.send_buffer // 2:
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
        while self._held is not None or not self._queue.empty():
            item, self._held = self._held or self._queue.get_nowait(), None
            if item[0] == ERROR and not isinstance(item[1], OSError):
                logger.error("Exception in ASGI application after disconnect", exc_info=item[1])
