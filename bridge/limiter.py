"""A token limiter whose uncontended acquire costs no trip through the event loop.

Rules:
1. Same contract as :class:`anyio.CapacityLimiter` for what the thread
   executor needs: at most ``total`` holders at once, first come first
   served, and a waiter that is cancelled never loses or leaks a token.
2. Taking a free token does not yield. anyio's limiter runs a cancellation
   checkpoint on acquire and a shielded one on release, two extra passes
   through the event loop per request: about an eighth of the loop's time
   for a small WSGI response on uvicorn. Every request awaits the worker
   right after acquiring, so it still reaches a checkpoint at once.
3. Only waiting uses the backend, through :class:`anyio.Event`, so it runs on
   asyncio and trio alike. A limiter belongs to one event loop (the thread
   executor keeps one per loop).
"""

from __future__ import annotations

from collections import deque

import anyio

__all__ = ["TokenLimiter"]


class TokenLimiter:
    """At most :attr:`total` holders at a time (see the module's rules).

    :param total: the number of tokens, at least 1.
    :raises ValueError: for ``total < 1``.
    """

    __slots__ = ("_waiters", "borrowed", "total")

    def __init__(self, total: int) -> None:
        if total < 1:
            raise ValueError(f"a limiter needs at least one token, not {total}")
        self.total = total
        self.borrowed = 0
        self._waiters: deque[anyio.Event] = deque()

    async def acquire(self) -> None:
        """Take a token, waiting (cancellably) for one to be released if none is free."""
        if self.borrowed < self.total and not self._waiters:
            self.borrowed += 1
            return
        handed = anyio.Event()
        self._waiters.append(handed)
        try:
            await handed.wait()
        except BaseException:
            if handed.is_set():
                self.release()  # the token arrived as we were cancelled: pass it on
            else:
                self._waiters.remove(handed)
            raise
        # release() handed its token straight to us: ``borrowed`` is unchanged.

    def release(self) -> None:
        """Give a token back, to the longest waiter if there is one."""
        if self._waiters:
            self._waiters.popleft().set()
        else:
            self.borrowed -= 1
