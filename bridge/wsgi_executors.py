"""Where ``WsgiToAsgi`` runs the WSGI app: the executor seam, and the thread executor.

The other executor, a greenlet on the loop's thread, is :mod:`bridge.wsgi_greenlet`.

Rules (the executor seam; the module docstring of :mod:`bridge.wsgi_to_asgi`
says what runs on which side):
1. Loop side: ``await executor.run(fn, exchange)`` runs ``fn(exchange)`` on
   the sync side and returns what it returns, or raises what it raised. While
   it runs, the executor delivers what the sync side emits (``emit``: the
   response start, body chunks, the final message) to ASGI ``send``.
2. Sync side: ``executor.call_async(exchange, fn, *args)`` runs
   ``await fn(*args)`` on the loop and blocks until it finishes (lazy
   ``wsgi.input`` reads); ``executor.emit(exchange, start, body)`` hands a
   response message on.
3. Every exit of ``run`` (including cancellation of the request task) leaves
   the sync side *finished*: ``close()`` has run there and, for the thread
   executor, the worker has returned and its limiter token is free.
4. While a streamed response is in progress (headers sent, the request body
   fully read, the sync side still producing), a watcher task turns an
   ``http.disconnect`` into :meth:`_Exchange.abort` (B19). Short responses
   never start it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Awaitable, Callable
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from bridge.errors import ClientDisconnected
from bridge.limiter import TokenLimiter
from bridge.types import Message
from bridge.wakeup import current_call_soon, current_checkpoint, current_new_event
from bridge.wsgi_outbox import Item, Outbox, coalesce

if TYPE_CHECKING:
    from bridge.wsgi_exchange import _Exchange

__all__ = ["Executor", "ThreadExecutor", "WorkerPool"]

logger = logging.getLogger("bridge")

T = TypeVar("T")

#: Seconds an idle worker thread waits for a job before it exits.
IDLE_TIMEOUT = 10.0


class Executor(Protocol):
    """Where the sync side runs (rules 1 and 2)."""

    async def run(self, fn: Callable[[_Exchange], T], exchange: _Exchange) -> T:
        """Loop side: run ``fn(exchange)`` on the sync side and return its result."""

    async def run_plain(self, fn: Callable[[], object]) -> None:
        """Loop side: run a blocking callable that never crosses back (lifespan hooks)."""

    def call_async(self, exchange: _Exchange, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Sync side: run ``await fn(*args)`` on the loop; block until it is done."""

    def emit(self, exchange: _Exchange, start: Message | None, body: Item) -> None:
        """Sync side: send ``start`` (if given) then ``body`` (a chunk or a message)."""


async def _send_start_and_body(exchange: _Exchange, start: Message | None, body: Item) -> None:
    send = exchange.send
    if start is not None:
        await send(start)
    if type(body) is bytes:
        if body:
            await send({"type": "http.response.body", "body": body, "more_body": True})
    else:
        await send(body)  # type: ignore[arg-type]


async def _watched(exchange: _Exchange, body: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``await body(*args)`` with the disconnect watcher alongside (rule 4)."""
    loop = asyncio._get_running_loop()
    if loop is not None:
        # asyncio: the watcher is a bare task. An anyio task group around it
        # costs about 48 us per streamed response on uvloop against 4 us,
        # as much as eight 64 KiB chunks of the rest of the stream.
        watcher = loop.create_task(exchange.watch_disconnect())
        try:
            return await body(*args)
        finally:
            watcher.cancel()
            # No task outlives the request: wait for the watcher's end.
            # asyncio.wait() never raises the watcher's CancelledError; if
            # this task is cancelled again meanwhile, the watcher still ends
            # one loop pass later.
            await asyncio.wait((watcher,))
    outcome: T | None = None
    error: Exception | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(exchange.watch_disconnect)
        try:
            outcome = await body(*args)
        except Exception as exc:
            # Raised outside the task group, so the app's exception reaches
            # the server unchanged (not in an ExceptionGroup).
            error = exc
        group.cancel_scope.cancel()
    if error is not None:
        raise error
    return outcome  # type: ignore[return-value]


# -- threads --------------------------------------------------------------------


class WorkerPool:
    """Daemon worker threads fed from one queue; idle ones exit after :data:`IDLE_TIMEOUT`.

    Not a bound by itself: the adapter's limiter caps the jobs in flight, and
    a thread is started only when no idle one is waiting.
    """

    __slots__ = ("_idle", "_jobs", "_lock", "_started")

    def __init__(self) -> None:
        self._jobs: SimpleQueue[tuple[Callable[..., object], tuple[Any, ...]]] = SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a job that no submitted job has claimed
        self._started = 0

    def submit(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` in a worker thread; it must not raise."""
        # A tuple, not a closure: fewer objects for the garbage collector to
        # track while the request is in flight.
        with self._lock:
            self._jobs.put((fn, args))
            if self._idle:
                self._idle -= 1
                return
            self._started += 1
            number = self._started
        threading.Thread(target=self._work, name=f"bridge-wsgi-{number}", daemon=True).start()

    def _work(self) -> None:
        jobs = self._jobs
        while True:
            try:
                fn, args = jobs.get(timeout=IDLE_TIMEOUT)
            except Empty:
                with self._lock:
                    if self._idle == 0:
                        continue  # a job was handed to a waiting thread: maybe this one
                    self._idle -= 1
                    return
            fn(*args)
            # Drop the finished job now: kept until the next one, it would hold
            # that request's environ, body and response alive meanwhile.
            del fn, args
            with self._lock:
                self._idle += 1


def _in_worker(fn: Callable[[_Exchange], object], exchange: _Exchange, outbox: Outbox) -> None:
    try:
        outcome = fn(exchange)
    except BaseException as exc:  # handed to the loop, which re-raises it
        outbox.finish(None, exc)
    else:
        outbox.finish(outcome, None)


class _LoopBinding:
    """What the thread executor keeps per event loop."""

    __slots__ = ("call_soon", "checkpoint", "limiter", "native", "new_event", "token")

    def __init__(self, token: Any, max_threads: int) -> None:
        self.native = token.native_token
        self.token = token
        self.call_soon = current_call_soon()
        self.checkpoint = current_checkpoint()
        self.new_event = current_new_event()
        self.limiter = TokenLimiter(max_threads)


class ThreadExecutor:
    """The sync side in a worker thread, at most ``max_threads`` at a time.

    One hop per request: the worker calls the app, iterates it and closes it,
    queueing the response in an :class:`~bridge.wsgi_outbox.Outbox` that the
    loop side drains into ``send``.

    :param max_threads: requests running the app at once.
    :param send_buffer: body bytes the worker may queue ahead of ``send``.
    """

    __slots__ = ("_bound", "_max_threads", "_pool", "send_buffer")

    def __init__(self, max_threads: int, send_buffer: int) -> None:
        self._max_threads = max_threads
        self.send_buffer = send_buffer
        self._bound: _LoopBinding | None = None
        self._pool = WorkerPool()

    def _bind(self) -> _LoopBinding:
        # The limiter, the wake-up and the token belong to the event loop that
        # runs the request. An adapter that outlives its loop (a module-level
        # app served by asyncio and then trio, a server restarted in-process)
        # binds afresh to the new one.
        bound = self._bound
        if bound is not None and bound.native is asyncio._get_running_loop():
            # The common case, asked cheaply: anyio's current_token() asks
            # sniffio which library runs, about 7% of the instructions of a
            # small request. On trio this is None and never matches.
            return bound
        token = anyio.lowlevel.current_token()
        if bound is None or bound.native is not token.native_token:
            bound = self._bound = _LoopBinding(token, self._max_threads)
        return bound

    async def run(self, fn: Callable[[_Exchange], T], exchange: _Exchange) -> T:
        bound = self._bind()
        limiter = bound.limiter
        await limiter.acquire()
        # The token is held until the worker has finished (rule 3).
        try:
            outbox = Outbox(bound.call_soon, self.send_buffer, bound.new_event)
            exchange.outbox = outbox
            exchange.token = bound.token
            context = contextvars.copy_context()  # the app sees the server task's context
            self._pool.submit(context.run, _in_worker, fn, exchange, outbox)
            try:
                await self._drain(exchange, outbox, bound, False)
            except BaseException:
                # Cancelled, or send() raised: wake the worker and wait (shielded)
                # until it has run close() and returned.
                exchange.abort("the request was aborted")
                with anyio.CancelScope(shield=True):
                    await outbox.wait_done()
                raise
            if outbox.error is not None:
                raise outbox.error
            return outbox.outcome  # type: ignore[return-value]
        finally:
            limiter.release()

    async def _drain(
        self, exchange: _Exchange, outbox: Outbox, bound: _LoopBinding, watching: bool
    ) -> None:
        """Send what the worker queues until it has finished."""
        send = exchange.send
        limit = self.send_buffer
        while True:
            batch, done = await outbox.take()
            if batch:
                messages, nbytes = coalesce(batch, limit)
                if exchange.abort_reason is None:
                    try:
                        for message in messages:
                            await send(message)
                    except OSError as exc:
                        # ASGI www §Disconnected Client: the client is gone.
                        exchange.disconnected = True
                        exchange.abort(f"the client disconnected: {exc!r}")
                outbox.sent(nbytes)
            if done:
                return
            if watching:
                # take() need not suspend: let the loop (and the watcher) run.
                await bound.checkpoint()
            elif exchange.can_watch():
                # Arguments, not a closure: a lambda here would make every
                # request's _drain allocate its cells, watched or not.
                await _watched(exchange, self._drain_watched, exchange, outbox, bound)
                return

    async def _drain_watched(
        self, exchange: _Exchange, outbox: Outbox, bound: _LoopBinding
    ) -> None:
        """:meth:`_drain` while the disconnect watcher runs (rule 4).

        One cancel scope covers the phase and :meth:`_Exchange.abort` cancels
        it, so a ``send()`` that never returns once the client has gone (a
        server that only notices later) does not keep the request waiting.
        """
        with exchange.guarded():
            await self._drain(exchange, outbox, bound, True)
            return
        # abort() cancelled the phase: the worker was told too (its next put
        # raises) and runs close(); wait until it has returned.
        await outbox.wait_done()

    async def run_plain(self, fn: Callable[[], object]) -> None:
        # Lifespan hooks run before and after serving: anyio's own threads.
        await anyio.to_thread.run_sync(fn)

    def call_async(self, exchange: _Exchange, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        try:
            return anyio.from_thread.run(exchange.crossing, fn, *args, token=exchange.token)
        except Exception:
            raise
        except BaseException as exc:
            # A cancellation delivered to the crossing: either way the request is over.
            if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
                raise
            raise ClientDisconnected("the request task was cancelled") from exc

    def emit(self, exchange: _Exchange, start: Message | None, body: Item) -> None:
        outbox = exchange.outbox
        assert outbox is not None
        outbox.put(start, body)
