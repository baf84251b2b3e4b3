"""Thread-safe wake-ups of the running event loop, on asyncio and trio.

Rules:
1. One primitive per backend, the backend's own: ``loop.call_soon_threadsafe``
   on asyncio, ``TrioToken.run_sync_soon`` on trio. Both schedule a plain
   callback on the loop from any thread, never wait, and cost one wake-up of
   the loop (a self-pipe write), which is the cheapest way back in.
2. :func:`current_call_soon` is called *on* the loop (it asks the running loop
   for its primitive); the callable it returns is then used from other
   threads. Both adapters use it: ``AsgiToWsgi``'s private loop
   (:mod:`bridge.loop`) and ``WsgiToAsgi``'s thread executor.
3. The scheduled callback runs outside any task: it may only do non-blocking
   loop-side work, such as setting an event.
4. What a loop-side waiter waits on is the backend's own event too
   (:func:`current_new_event`): ``anyio.Event()`` asks sniffio which library
   runs on every construction, which costs more than the rest of a waiter.
   On asyncio it is a :class:`FutureEvent`, one bare future: an
   ``asyncio.Event`` adds a dict, a deque of waiters and a future per wait,
   objects the garbage collector then tracks for every request in flight.
   Every event here has a single waiter, which is all a future supports well.
5. A task that must let the loop run (a long stream whose ``send()`` never
   suspends) yields through the backend's own checkpoint
   (:func:`current_checkpoint`), for the same reason.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio.lowlevel

__all__ = [
    "CallSoon",
    "FutureEvent",
    "NativeEvent",
    "current_call_soon",
    "current_checkpoint",
    "current_new_event",
]

CallSoon = Callable[..., object]
"""``call_soon(fn, *args)``: run ``fn(*args)`` on the loop soon; thread-safe, never waits."""


class NativeEvent(Protocol):
    """:class:`FutureEvent` or ``trio.Event``: what both offer."""

    def set(self) -> None: ...

    def is_set(self) -> bool: ...

    def wait(self) -> Awaitable[Any]: ...


class FutureEvent:
    """A one-waiter event on the running asyncio loop (rule 4), built on one future.

    ``set()`` must run on the loop (through ``call_soon_threadsafe`` from
    another thread). If the waiting task is cancelled, the future is
    cancelled with it and a later ``set()`` does nothing.
    """

    __slots__ = ("_future",)

    def __init__(self) -> None:
        self._future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def set(self) -> None:
        """Wake the waiter (now or when it starts waiting); idempotent."""
        if not self._future.done():
            self._future.set_result(None)

    def is_set(self) -> bool:
        """Whether :meth:`set` has run (a cancelled wait does not count)."""
        future = self._future
        return future.done() and not future.cancelled()

    def wait(self) -> Awaitable[None]:
        """Wait until :meth:`set` has run: the future itself, no coroutine around it."""
        return self._future


def _on_trio() -> bool:
    """Whether the running loop is trio's (anyio's token then wraps a ``TrioToken``).

    :raises RuntimeError: outside a running event loop.
    """
    return hasattr(anyio.lowlevel.current_token().native_token, "run_sync_soon")


def current_new_event() -> Callable[[], NativeEvent]:
    """The running loop's own event class (rule 4), to create events on this loop.

    :raises RuntimeError: outside a running event loop.
    """
    if _on_trio():
        import trio

        return trio.Event
    return FutureEvent


def current_checkpoint() -> Callable[[], Awaitable[None]]:
    """The running loop's own checkpoint (rule 5): yield to the loop, honour cancellation.

    :raises RuntimeError: outside a running event loop.
    """
    if _on_trio():
        import trio.lowlevel

        return trio.lowlevel.checkpoint
    # asyncio.sleep(0) is asyncio's bare yield: one pass through the loop.
    return functools.partial(asyncio.sleep, 0)


def current_call_soon() -> CallSoon:
    """The running loop's thread-safe ``call_soon(fn, *args)`` (rule 1).

    :raises RuntimeError: outside a running event loop (anyio's
        ``NoEventLoopError``), or on a loop with neither primitive.
    """
    # anyio's token wraps the backend's own: a TrioToken on trio, the
    # asyncio event loop on asyncio.
    native = anyio.lowlevel.current_token().native_token
    run_sync_soon: CallSoon | None = getattr(native, "run_sync_soon", None)
    if run_sync_soon is not None:
        return run_sync_soon
    call_soon_threadsafe: CallSoon | None = getattr(native, "call_soon_threadsafe", None)
    if call_soon_threadsafe is not None:
        return call_soon_threadsafe
    raise RuntimeError(f"cannot wake an event loop of type {type(native).__name__}")
