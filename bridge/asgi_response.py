"""The items an ASGI app's response becomes for the WSGI thread (A→W ``send``, SPEC D10-D12, D16).

Rules:
1. Pure: no threads, loops or I/O. :class:`ResponseItems` feeds each message
   the app passes to ``send()`` to a :class:`~bridge.asgi_messages.ResponseCycle`
   (which checks it) and turns the event into the item the exchange
   (:mod:`bridge.asgi_exchange`) puts on its queue, or into nothing.
2. ``http.response.start`` is held until the first body (D16), so a small
   response crosses the thread boundary in one queue put, and an exception
   before any body can still become a 500 (D9).
3. HEAD, 1xx, 204 and 304 have no body; Content-Length is kept (D10).
4. Trailers are waited for, then discarded (D11): WSGI cannot send them.
5. The WSGI thread hands the server what has already accumulated as one chunk
   (:func:`join_queued`): small bodies queued while the server was writing go
   out in one write, up to a limit. Nothing is held back waiting for more.
"""

from __future__ import annotations

from queue import Empty, SimpleQueue
from typing import Any

from bridge.asgi_messages import BODY, PATHSEND, START, ResponseCycle, ResponseStart
from bridge.types import Message, Scope

__all__ = [
    "DATA",
    "ERROR",
    "NO_START",
    "PATH",
    "READ",
    "READ_ITEM",
    "ResponseItems",
    "join_queued",
]

# Items the loop side puts on the queue for the WSGI thread.
READ = 0  # (READ,): read body chunks (bridge.asgi_exchange rule 3)
DATA = 1  # (DATA, data, done, start | None)
PATH = 2  # (PATH, path, done, start)
ERROR = 3  # (ERROR, exception)
NO_START = 4  # (NO_START,): the app returned without http.response.start
READ_ITEM = (READ,)


class ResponseItems:
    """The queue items for one response's messages (see the module's rules).

    :param scope: the request's scope (its ``method`` decides D10 at start).
    """

    __slots__ = ("_cycle", "_pending_start", "_scope", "_suppress_body")

    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self._cycle = ResponseCycle()
        self._pending_start: ResponseStart | None = None
        self._suppress_body = False

    @property
    def started(self) -> bool:
        """Whether ``http.response.start`` has been fed."""
        return self._cycle.started

    def feed(self, message: Message) -> tuple[Any, ...] | None:
        """The item for ``message``, or ``None`` when there is nothing to hand over yet.

        :param message: what the application passed to ``send()``.
        :raises AppProtocolError: for an invalid message or order (D6).
        """
        kind, payload, done = self._cycle.feed(message)
        if kind == START:
            self._pending_start = payload
            status = payload.status
            # D10: HEAD, 1xx, 204 and 304 have no body; Content-Length is kept.
            self._suppress_body = (
                status < 200 or status == 204 or status == 304 or self._scope["method"] == "HEAD"
            )
            return None
        if kind == BODY:
            if self._suppress_body:
                payload = b""
            if not payload and not done:
                return None  # nothing to hand over (PEP 3333: empty chunks send nothing)
            item: tuple[Any, ...] = (DATA, payload, done, self._pending_start)
        elif kind == PATHSEND:
            if self._suppress_body:
                item = (DATA, b"", done, self._pending_start)
            else:
                item = (PATH, payload, done, self._pending_start)
        else:  # TRAILERS (D11): waited for, then discarded
            if not done:
                return None
            item = (DATA, b"", True, self._pending_start)
        self._pending_start = None
        return item

    def end(self) -> tuple[Any, ...]:
        """The item that ends a started response the app returned from (D8)."""
        start, self._pending_start = self._pending_start, None
        return (DATA, b"", True, start)


def join_queued(
    queue: SimpleQueue[tuple[Any, ...]], data: bytes, limit: int
) -> tuple[bytes, bool, tuple[Any, ...] | None, int]:
    """``data`` joined with the ``DATA`` items already queued behind it (rule 5).

    Takes items without waiting while the joined size is under ``limit``.

    :returns: the bytes; whether the final ``DATA`` item was among those taken;
        the first item of another kind taken, which the caller handles next
        (``None`` if there was none); and how many ``DATA`` items the bytes
        came from, ``data``'s own included.
    """
    parts = [data]
    size = len(data)
    done = False
    other = None
    while size < limit:
        try:
            item = queue.get_nowait()
        except Empty:
            break
        if item[0] != DATA:
            other = item
            break
        parts.append(item[1])
        size += len(item[1])
        if item[2]:
            done = True
            break
    count = len(parts)
    return (data if count == 1 else b"".join(parts)), done, other, count
