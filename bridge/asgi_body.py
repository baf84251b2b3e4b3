"""The request body of an ASGI app served by a WSGI server (A→W ``receive``, SPEC D1).

Rules:
1. ``wsgi.input`` is read in the WSGI server's thread only (it is blocking
   I/O), lazily: nothing before the app's first ``receive()``, so a server
   that sends ``100 Continue`` on the first read keeps working (PEP 3333
   §Expect/Continue option 2).
2. Bounded reads: at most ``chunk_size`` bytes each. With
   ``wsgi.input_terminated``, read to EOF; otherwise exactly
   ``CONTENT_LENGTH`` bytes, and nothing at all when it is missing or empty
   (a read could block). The last message has ``more_body=False``; an empty
   body is one message. An early EOF (or a failing read) is ``http.disconnect``.
3. Read-ahead: once asked, the WSGI thread reads the chunk the app waits for
   and goes on while fewer than ``4 * chunk_size`` bytes wait in the buffer,
   so the next ``receive()`` calls are answered on the loop without a thread
   round trip. The loop asks again as soon as less than half of that is left,
   so the thread reads on while the app handles what is buffered. Memory per
   request stays within ``4 * chunk_size`` plus one chunk.
4. :class:`RequestBody` holds no lock: the exchange
   (:mod:`bridge.asgi_exchange`) calls :meth:`~RequestBody.push`,
   :meth:`~RequestBody.pop` and :meth:`~RequestBody.ask` under its own lock,
   and :meth:`~RequestBody.read` (the blocking part) outside it.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from bridge.errors import ServerProtocolError
from bridge.types import Environ, Message

__all__ = ["RequestBody", "body_length", "disconnect"]

logger = logging.getLogger("bridge.asgi_to_wsgi")

#: Rule 3: chunks read ahead of the app, at most.
_READ_AHEAD = 4


def disconnect() -> Message:
    """A fresh ``http.disconnect`` message."""
    return {"type": "http.disconnect"}


def body_length(environ: Environ) -> int | None:
    """Rule 2: ``None`` (read to EOF) with ``wsgi.input_terminated``, else ``CONTENT_LENGTH``.

    :raises ServerProtocolError: for a negative or non-integer ``CONTENT_LENGTH``.
    """
    if environ.get("wsgi.input_terminated"):
        return None
    length = environ.get("CONTENT_LENGTH")
    if not length:
        return 0  # missing or empty: read nothing at all
    try:
        left = int(length)
    except ValueError:
        raise ServerProtocolError(f"invalid CONTENT_LENGTH {length!r}") from None
    if left < 0:
        raise ServerProtocolError(f"invalid CONTENT_LENGTH {length!r}")
    return left


class RequestBody:
    """The body of one request: bounded reads and the read-ahead buffer (rules 2-4).

    :param stream: ``wsgi.input``.
    :param left: bytes still to read, or ``None`` to read to EOF (:func:`body_length`).
    :param chunk_size: the largest read.
    """

    __slots__ = ("_buffer", "_buffered", "_chunk_size", "_eof", "_left", "_reading", "_stream")

    def __init__(self, stream: Any, left: int | None, chunk_size: int) -> None:
        self._stream = stream
        self._left = left
        self._chunk_size = chunk_size
        self._buffer: deque[Message] = deque()  # read, not yet received
        self._buffered = 0  # the bytes in _buffer
        self._reading = False  # a read request is queued or being served
        self._eof = False  # the final message (or a disconnect) is read

    @property
    def exhausted(self) -> bool:
        """Whether nothing is buffered and nothing more will be read (loop side)."""
        return self._eof and not self._buffer

    def ask(self) -> bool:
        """Whether the caller must queue a read request: none pending, more to read."""
        if self._reading or self._eof:
            return False
        self._reading = True
        return True

    def pop(self) -> tuple[Message | None, bool]:
        """The next buffered message (or ``None``), and whether to queue a read request."""
        buffer = self._buffer
        if not buffer:
            return None, False
        message = buffer.popleft()
        if message["type"] == "http.request":
            self._buffered -= len(message["body"])
        # Rule 3: under half the read-ahead left: read on while the app handles it.
        return message, self._buffered < _READ_AHEAD * self._chunk_size // 2 and self.ask()

    def read(self) -> Message:
        """WSGI thread, outside the lock: read one bounded chunk (rule 2)."""
        left = self._left
        try:
            if left is None:
                data = self._stream.read(self._chunk_size)
                return {"type": "http.request", "body": data, "more_body": bool(data)}
            if left == 0:
                return {"type": "http.request", "body": b"", "more_body": False}
            data = self._stream.read(min(left, self._chunk_size))
        except Exception:
            logger.info("reading wsgi.input failed; treating it as a disconnect", exc_info=True)
            return disconnect()
        if not data:
            # D1: "An early EOF becomes http.disconnect."
            logger.info("request body ended %d bytes early: client disconnected", left)
            return disconnect()
        left -= len(data)
        self._left = left
        return {"type": "http.request", "body": data, "more_body": left > 0}

    def push(self, message: Message, stop: bool) -> bool:
        """WSGI thread, under the lock: buffer ``message``; return whether to read on.

        :param stop: the response completed or the client left: read no further.
        """
        self._buffer.append(message)
        if message["type"] == "http.request":
            self._buffered += len(message["body"])
            final = not message["more_body"]
        else:
            final = True
        if final:
            self._eof = True
        more = not (final or stop) and self._buffered < _READ_AHEAD * self._chunk_size
        if not more:
            self._reading = False
        return more
