"""The strangler-fig fall-through of :class:`~bridge.Dispatcher` (its rule 4).

Rules:
1. The mounted ("new") app runs with a recording ``receive`` and a deciding
   ``send``. The first ``http.response.start`` decides: status 404 while the
   body recorded so far is complete → *fall through*: that start and every
   later message are swallowed, and each later ``receive()`` call returns
   ``http.disconnect`` at once, so the new app finishes quickly and reads no
   more of the body (ASGI www §Disconnect). Any other start, or a 404 when
   replay is impossible, passes through, and so does the rest.
2. Recording is bounded by ``limit`` bytes of body, held in memory. A request
   whose ``Content-Length`` exceeds it is never recorded; a chunked body that
   grows past it stops the recording. Either way the request can no longer
   fall through, and the new app's 404 is the answer.
3. The fallback ("legacy") app gets :meth:`FallThrough.replay_receive`: the
   recorded ``http.request`` messages in order, then the server's ``receive``
   for whatever the new app did not read. The messages are the server's own
   objects, so ``body`` and ``more_body`` are exactly what was received.
4. A receive call already waiting when the new app decided can still bring in
   a chunk that overflows the recording. Replay is then impossible after all;
   :attr:`FallThrough.replay_lost` is set and the dispatcher answers 404.
"""

from __future__ import annotations

import logging

from bridge.types import Message, Receive, Scope, Send

__all__ = ["FallThrough"]

logger = logging.getLogger("bridge.dispatch")


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if bytes(name).lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class FallThrough:
    """One request's recorder and decider (module docstring).

    :param receive: the server's ``receive``.
    :param send: the server's ``send``.
    :param limit: the most request-body bytes to record for a replay.
    :param scope: the request scope (for ``Content-Length``).
    """

    __slots__ = (
        "_decided",
        "_receive",
        "_recorded",
        "_replay",
        "_send",
        "falling_through",
        "limit",
        "replay_lost",
        "replayable",
    )

    def __init__(self, receive: Receive, send: Send, limit: int, scope: Scope) -> None:
        self._receive = receive
        self._send = send
        self.limit = limit
        length = _content_length(scope)
        self.replayable = length is None or length <= limit  # rule 2
        self._replay: list[Message] = []
        self._recorded = 0
        self._decided = False
        self.falling_through = False
        """Whether the new app answered 404 and the fallback must serve the request."""
        self.replay_lost = False
        """Rule 4: fell through, but the recording overflowed afterwards."""

    async def receive(self) -> Message:
        """The new app's ``receive``: record body messages while replay is possible."""
        if self.falling_through:
            return {"type": "http.disconnect"}  # rule 1: its answer is discarded anyway
        return self._record(await self._receive())

    def _record(self, message: Message) -> Message:
        if self.replayable and message.get("type") == "http.request":
            size = len(message.get("body", b""))
            if self._recorded + size > self.limit:
                self.replayable = False
                self._replay.clear()
                # Rule 4: a receive that was already waiting when the app decided.
                self.replay_lost = self.falling_through
                logger.debug("request body exceeds %d bytes; no fall-through", self.limit)
            else:
                self._recorded += size
                self._replay.append(message)
        return message

    async def send(self, message: Message) -> None:
        """The new app's ``send``: the first response start decides (rule 1)."""
        if self.falling_through:
            return
        if not self._decided and message.get("type") == "http.response.start":
            self._decided = True
            if message.get("status") == 404 and self.replayable:
                self.falling_through = True
                return
        await self._send(message)

    async def replay_receive(self) -> Message:
        """The fallback app's ``receive``: the recording, then the server (rule 3)."""
        if self._replay:
            return self._replay.pop(0)
        return await self._receive()
