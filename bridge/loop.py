"""The private event loop that runs ASGI apps inside a WSGI server.

Rules:
1. One loop per process and per (backend, backend options), shared by every
   adapter, started lazily on first use (E11) in a *daemon* thread, so a
   forgotten adapter never keeps the interpreter alive.
2. Fork safety: a forked child never touches the parent's loop, whose thread
   does not exist in the child. ``os.register_at_fork`` forgets every loop in
   the child (each then says it is not running) and bumps :data:`generation`;
   the next use starts a fresh loop.
3. Nothing blocks on the loop from the loop's own thread: that would deadlock,
   so :meth:`PrivateLoop.check_not_loop_thread` raises instead.
4. Two ways in from other threads: :attr:`PrivateLoop.call_soon` (the
   backend's own thread-safe scheduling, one wake-up, no waiting: used per
   request) and :attr:`PrivateLoop.portal` (anyio's blocking portal: used for
   the rare calls that need a result, such as lifespan).
5. Per-request tasks are cancellable without an anyio ``CancelScope`` (which
   costs more than the rest of a hello-world request on asyncio):
   :attr:`PrivateLoop.cancel_handle` wraps the task's body (a native
   ``trio.CancelScope``; on asyncio it just names the current task) and
   :attr:`PrivateLoop.cancel_later` cancels it after a delay (a deadline on
   trio, ``call_later(delay, task.cancel)`` on asyncio). Both keep the task
   cancelled until it ends: trio's cancellation is level-triggered, and on
   asyncio, where a task may swallow ``CancelledError`` and run on, the
   cancel is repeated every ``delay`` seconds (at least :data:`RECANCEL_MIN`),
   with a warning, so such an app cannot outlive its client for good.
6. Spawns from many server threads share wake-ups: each goes into an inbox,
   and only a spawn that finds no drain already scheduled wakes the loop. Under
   load one self-pipe write (and one trip through ``select()``) starts many
   requests, instead of one each.

Why not ``anyio.from_thread.start_blocking_portal``: it runs the loop in a
``ThreadPoolExecutor`` worker, which is not a daemon thread and is joined
*before* ``atexit`` handlers run, so a process with a live loop would hang at
exit and lifespan shutdown could never run from ``atexit``. We run the same
:class:`anyio.from_thread.BlockingPortal` in our own daemon thread instead.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import importlib.util
import logging
import math
import os
import threading
from collections.abc import Callable, Coroutine, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

import anyio
from anyio.from_thread import BlockingPortal

from bridge.wakeup import current_call_soon, current_new_event

__all__ = [
    "Disarm",
    "PrivateLoop",
    "default_backend_options",
    "generation",
    "get_loop",
    "stop_all_loops",
]

logger = logging.getLogger("bridge.loop")

# Incremented in a forked child; adapters compare it to notice a fork cheaply.
generation = 0

_loops: dict[tuple[str, tuple[tuple[str, Any], ...]], PrivateLoop] = {}
_loops_lock = threading.Lock()


class PrivateLoop:
    """An event loop running in a daemon thread, with a task group to spawn into.

    Use :func:`get_loop`; do not construct it directly.

    :param backend: ``"asyncio"`` or ``"trio"``.
    :param backend_options: passed to :func:`anyio.run`, for instance
        ``{"use_uvloop": True}`` on asyncio.
    """

    portal: BlockingPortal
    """anyio's blocking portal into the loop (calls that wait for a result)."""
    call_soon: Callable[..., object]
    """``call_soon(fn, *args)`` runs ``fn(*args)`` on the loop; thread-safe, never waits."""
    clock: Callable[[], float]
    """The loop's clock, as ``anyio.current_time()``, callable on the loop outside any task."""
    new_event: Callable[[], Any]
    """A fresh native event (:class:`~bridge.wakeup.FutureEvent` or ``trio.Event``:
    ``set()``, ``await wait()``, one waiter), cheaper than ``anyio.Event``;
    create and use it on the loop."""
    cancel_handle: Callable[[], AbstractContextManager[Any]]
    """``with loop.cancel_handle() as handle:`` around a task's body, on the loop (rule 5)."""
    cancel_later: Callable[[Any, float], Disarm]
    """``cancel_later(handle, delay)``: cancel that task ``delay`` seconds from now.

    Called on the loop, inside or outside a task; returns a :class:`Disarm`."""

    def __init__(self, backend: str, backend_options: Mapping[str, Any] | None = None) -> None:
        self.backend = backend
        self.backend_options = dict(backend_options or {})
        self.pid = os.getpid()
        self._spawn_soon: Callable[[Callable[[], Coroutine[Any, Any, object]]], object] | None = (
            None
        )
        # Spawns waiting for the loop, and whether a drain of them is scheduled (rule 6).
        self._inbox: collections.deque[Callable[[], Coroutine[Any, Any, object]]] = (
            collections.deque()
        )
        self._drain_scheduled = False
        self._stop: anyio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"bridge-loop-{backend}", daemon=True
        )
        self.thread_ident: int | None = None

    def start(self) -> None:
        """Start the thread and wait until the loop accepts work.

        :raises RuntimeError: if the loop could not start (bad backend or options).
        """
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise RuntimeError(f"bridge could not start its {self.backend} loop") from self._error

    def _run(self) -> None:
        self.thread_ident = threading.get_ident()
        try:
            anyio.run(self._host, backend=self.backend, backend_options=self.backend_options)
        except BaseException as exc:
            self._error = exc
            logger.exception("bridge %s loop crashed", self.backend)
        finally:
            self._ready.set()

    async def _host(self) -> None:
        self._stop = stop = anyio.Event()
        try:
            async with BlockingPortal() as portal:
                self.portal = portal
                # Per-request tasks are spawned from a thread-safe callback, where
                # no task is current; anyio's task groups need one, so spawn with
                # the backend's own primitives. The tasks themselves use anyio.
                if self.backend == "trio":
                    await self._host_trio(stop)
                else:
                    await self._host_asyncio(stop)
                await portal.stop(cancel_remaining=True)
        finally:
            self._spawn_soon = None

    async def _host_trio(self, stop: anyio.Event) -> None:
        import trio

        self.call_soon = current_call_soon()
        self.clock = trio.current_time
        self.new_event = current_new_event()
        self.cancel_handle = trio.CancelScope
        self.cancel_later = _trio_cancel_later
        async with trio.open_nursery() as nursery:
            self._spawn_soon = nursery.start_soon
            self._ready.set()
            await stop.wait()
            nursery.cancel_scope.cancel()

    async def _host_asyncio(self, stop: anyio.Event) -> None:
        loop = asyncio.get_running_loop()
        self.call_soon = current_call_soon()
        self.clock = loop.time
        self.new_event = current_new_event()
        self.cancel_handle = _CurrentAsyncioTask
        self.cancel_later = functools.partial(_asyncio_cancel_later, loop)
        tasks: set[asyncio.Task[object]] = set()
        current_task = asyncio.current_task

        async def tracked(func: Callable[[], Coroutine[Any, Any, object]]) -> object:
            try:
                return await func()
            finally:
                # Not a done callback: that costs the loop one more iteration per
                # request, and each iteration's select() releases the GIL.
                tasks.discard(current_task())

        def spawn_soon(func: Callable[[], Coroutine[Any, Any, object]]) -> None:
            # The loop keeps only weak references to tasks.
            tasks.add(loop.create_task(tracked(func)))

        self._spawn_soon = spawn_soon
        self._ready.set()
        await stop.wait()
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def spawn(self, func: Callable[[], Coroutine[Any, Any, object]]) -> None:
        """Start ``func()`` as a task on the loop, from any thread, without waiting.

        ``func`` must handle its own exceptions; only cancellation may escape.

        :raises RuntimeError: if the loop has stopped.
        """
        if self._spawn_soon is None:
            raise RuntimeError(f"bridge's {self.backend} loop is not running")
        # Rule 6. Order matters: append first, then look at the flag (the
        # drain clears the flag before it empties the inbox), so a spawn is
        # either seen by a drain already scheduled or schedules its own.
        self._inbox.append(func)
        if not self._drain_scheduled:
            self._drain_scheduled = True
            try:
                self.call_soon(self._drain_inbox)
            except BaseException:
                self._drain_scheduled = False  # the loop is closing; let a later spawn retry
                raise

    def _drain_inbox(self) -> None:
        """On the loop: start every spawn that arrived since the last drain."""
        self._drain_scheduled = False
        inbox = self._inbox
        spawn_soon = self._spawn_soon
        if spawn_soon is None:
            if inbox:
                logger.error(
                    "bridge's %s loop is stopping; %d requests not started",
                    self.backend,
                    len(inbox),
                )
            return
        while inbox:
            spawn_soon(inbox.popleft())

    def check_not_loop_thread(self) -> None:
        """Raise if the caller is the loop's own thread (blocking there deadlocks; E11).

        :raises RuntimeError: when called from the loop thread.
        """
        if threading.get_ident() == self.thread_ident:
            raise RuntimeError(
                "a WSGI call was made from bridge's own event loop thread; it would "
                "block the loop it waits for. Call the WSGI app from a worker thread "
                "(for instance anyio.to_thread.run_sync)."
            )

    @property
    def running(self) -> bool:
        """Whether the loop thread is alive and accepts work."""
        # _spawn_soon is set while the loop's host task runs, and cleared when
        # it ends or (rule 2) in a forked child: a flag, not Thread.is_alive(),
        # which costs four calls and a lock, twice per request.
        return self._spawn_soon is not None

    def stop(self, timeout: float | None = 10.0) -> None:
        """Cancel every task on the loop, stop it and join its thread.

        :param timeout: how long to wait for the thread, in seconds.
        """
        stop = self._stop
        if stop is not None and self._thread.is_alive():
            try:
                self.call_soon(stop.set)
            except RuntimeError:  # the loop is already closing
                logger.debug("bridge %s loop already stopping", self.backend)
        if self._thread.is_alive() and threading.get_ident() != self.thread_ident:
            self._thread.join(timeout)


class Disarm(Protocol):
    """What :attr:`PrivateLoop.cancel_later` returns: ``cancel()`` disarms it."""

    def cancel(self) -> object: ...


class _TrioDeadline:
    __slots__ = ("_scope",)

    def __init__(self, scope: Any) -> None:
        self._scope = scope

    def cancel(self) -> None:
        # The handle's scope is ours alone (one per task): no other deadline to keep.
        self._scope.deadline = math.inf


def _trio_cancel_later(scope: Any, delay: float) -> Disarm:
    import trio

    scope.deadline = min(scope.deadline, trio.current_time() + delay)
    return _TrioDeadline(scope)


class _CurrentAsyncioTask:
    """``with _CurrentAsyncioTask() as task``: the running asyncio task, nothing to enter."""

    __slots__ = ()

    def __enter__(self) -> Any:
        return asyncio.current_task()

    def __exit__(self, *exc_info: object) -> None:
        return None


#: Seconds between two cancellations of an asyncio task that swallowed the last one.
RECANCEL_MIN = 0.05


class _AsyncioCancel:
    """Cancel ``task`` in ``delay`` seconds, then every ``delay`` seconds until it ends (rule 5)."""

    __slots__ = ("_fired", "_handle", "_loop", "_period", "_task")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any], delay: float
    ) -> None:
        self._loop = loop
        self._task = task
        self._period = max(delay, RECANCEL_MIN)
        self._fired = False
        self._handle: asyncio.Handle | None = (
            loop.call_soon(self._fire) if delay <= 0 else loop.call_later(delay, self._fire)
        )

    def _fire(self) -> None:
        task = self._task
        if task.done():
            self._handle = None
            return
        if self._fired:
            # Still running a period after the last cancel: it was caught and
            # the task went on (asyncio's cancellation is edge-triggered).
            logger.warning(
                "ASGI app task %s kept running after it was cancelled; cancelling it again",
                task.get_name(),
            )
        self._fired = True
        task.cancel()
        self._handle = self._loop.call_later(self._period, self._fire)

    def cancel(self) -> None:
        """Disarm: the task ended, or finished its response in time."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel()


def _asyncio_cancel_later(
    loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any], delay: float
) -> Disarm:
    return _AsyncioCancel(loop, task, delay)


def _key(
    backend: str, options: Mapping[str, Any] | None
) -> tuple[str, tuple[tuple[str, Any], ...]]:
    return backend, tuple(sorted((options or {}).items()))


def default_backend_options(backend: str) -> dict[str, Any]:
    """The private loop's options when the user gives none: uvloop on asyncio if installed.

    uvloop runs the same small request in about a sixth fewer instructions
    than asyncio's own loop (its thread-safe wake-up and its loop iteration
    are compiled), and uvicorn picks it the same way (``--loop auto``).

    :param backend: ``"asyncio"`` or ``"trio"``.
    """
    if backend == "asyncio" and importlib.util.find_spec("uvloop") is not None:
        return {"use_uvloop": True}
    return {}


def get_loop(
    backend: str = "asyncio", backend_options: Mapping[str, Any] | None = None
) -> PrivateLoop:
    """Return the running private loop for ``backend``, starting it if needed.

    :param backend: ``"asyncio"`` or ``"trio"``.
    :param backend_options: passed to :func:`anyio.run`; ``None`` means
        :func:`default_backend_options`.
    :raises ValueError: for an unknown backend.
    :raises RuntimeError: if the loop cannot start.
    """
    if backend not in ("asyncio", "trio"):
        raise ValueError(f"backend must be 'asyncio' or 'trio', not {backend!r}")
    if backend_options is None:
        backend_options = default_backend_options(backend)
    key = _key(backend, backend_options)
    loop = _loops.get(key)
    if loop is not None and loop.running and loop.pid == os.getpid():
        return loop
    with _loops_lock:
        loop = _loops.get(key)
        if loop is None or not loop.running or loop.pid != os.getpid():
            loop = PrivateLoop(backend, backend_options)
            loop.start()
            _loops[key] = loop
        return loop


def stop_all_loops(timeout: float | None = 10.0) -> None:
    """Stop every private loop of this process (tests, and orderly shutdown).

    Adapters still alive start a fresh loop on their next request.
    """
    with _loops_lock:
        loops = list(_loops.values())
        _loops.clear()
    for loop in loops:
        if loop.pid == os.getpid():
            loop.stop(timeout)


def _forget_loops_in_child() -> None:
    """After ``fork()``: the parent's loop threads do not exist here; never touch them."""
    global _loops_lock, generation
    _loops_lock = threading.Lock()  # it may have been held by another thread at fork
    for loop in _loops.values():
        loop._spawn_soon = None  # not running: anyone still holding it gets an error
    _loops.clear()
    generation += 1


os.register_at_fork(after_in_child=_forget_loops_in_child)
