"""Where ``WsgiToAsgi`` runs the WSGI app: a worker thread, or a greenlet on the loop.

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

import contextvars
import functools
import logging
import threading
from collections.abc import Awaitable, Callable
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from greenlet import GreenletExit, getcurrent, greenlet

from bridge.errors import ClientDisconnected
from bridge.limiter import TokenLimiter
from bridge.types import Message
from bridge.wakeup import current_call_soon, current_new_event
from bridge.wsgi_outbox import Item, Outbox, coalesce

if TYPE_CHECKING:
    from bridge.wsgi_exchange import _Exchange

__all__ = ["GreenletExecutor", "ThreadExecutor", "WorkerPool"]

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


async def _watched(exchange: _Exchange, body: Callable[[], Awaitable[T]]) -> T:
    """Run ``await body()`` with the disconnect watcher alongside (rule 4)."""
    outcome: T | None = None
    error: Exception | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(exchange.watch_disconnect)
        try:
            outcome = await body()
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
        self._jobs: SimpleQueue[Callable[[], object]] = SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a job that no submitted job has claimed
        self._started = 0

    def submit(self, job: Callable[[], object]) -> None:
        """Run ``job()`` in a worker thread; it must not raise."""
        with self._lock:
            self._jobs.put(job)
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
                job = jobs.get(timeout=IDLE_TIMEOUT)
            except Empty:
                with self._lock:
                    if self._idle == 0:
                        continue  # a job was handed to a waiting thread: maybe this one
                    self._idle -= 1
                    return
            job()
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

    __slots__ = ("call_soon", "limiter", "native", "new_event", "token")

    def __init__(self, token: Any, limiter: TokenLimiter) -> None:
        self.native = token.native_token
        self.token = token
        self.call_soon = current_call_soon()
        self.new_event = current_new_event()
        self.limiter = limiter


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
        token = anyio.lowlevel.current_token()
        bound = self._bound
        if bound is None or bound.native is not token.native_token:
            bound = self._bound = _LoopBinding(token, TokenLimiter(self._max_threads))
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
            self._pool.submit(lambda: context.run(_in_worker, fn, exchange, outbox))
            try:
                await self._drain(exchange, outbox, watching=False)
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

    async def _drain(self, exchange: _Exchange, outbox: Outbox, *, watching: bool) -> None:
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
                await anyio.lowlevel.checkpoint()  # see GreenletExecutor._drive
            elif exchange.can_watch():
                await _watched(exchange, lambda: self._drain(exchange, outbox, watching=True))
                return

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


# -- greenlets ----------------------------------------------------------------------

# A greenlet that ignores ClientDisconnected this many times is left to the
# garbage collector (with an error logged) rather than looping forever.
_MAX_THROWS = 100

#: Idle runner greenlets kept per thread for the next requests.
MAX_IDLE_RUNNERS = 64

# What a runner switches to its driver when its job has ended; the job's
# outcome is then in ``runner.outcome``. Anything else it switches is a
# crossing to run on the loop: ``(fn, args)``.
_ENDED = object()
_DONE = 0
_FAILED = 1

_idle = threading.local()  # .runners: this thread's idle runners (greenlets are per thread)


class _Runner(greenlet):  # type: ignore[misc]
    """A greenlet that runs one job after another.

    Starting a fresh greenlet (its first switch, and its death) costs about
    8 µs, more than the rest of a small request; switching into a suspended
    one costs about 0.4 µs. So a request borrows an idle runner and gives it
    back once its job has ended.
    """

    __slots__ = ("busy", "outcome")

    def __init__(self) -> None:
        super().__init__(self._serve)
        self.busy = False
        self.outcome: tuple[int, Any] | None = None

    def _serve(self, job: tuple[Callable[[_Exchange], object], _Exchange]) -> None:
        while True:
            fn, exchange = job
            del job
            try:
                self.outcome = (_DONE, fn(exchange))
            except GreenletExit:
                raise  # dropped by the garbage collector while idle: end the greenlet
            except BaseException as exc:  # the driver re-raises it on the loop
                self.outcome = (_FAILED, exc)
            # No local may keep the job's objects (or an exception's frames)
            # alive while this greenlet sits idle.
            del fn, exchange
            self.busy = False
            job = self.parent.switch(_ENDED)


class GreenletExecutor:
    """The sync side in a greenlet on the loop's own thread (no thread hop).

    Each blocking point of the app (a lazy ``wsgi.input`` read, a response
    chunk, ``write()``) switches to the request task, which awaits the ASGI
    call and switches back with its result, or throws its exception in. One
    chunk in flight at a time: SPEC B10 to the letter. The greenlets are
    reused (:data:`MAX_IDLE_RUNNERS` idle ones per thread).
    """

    __slots__ = ()

    @staticmethod
    def _borrow() -> _Runner:
        runners: list[_Runner] | None = getattr(_idle, "runners", None)
        runner = runners.pop() if runners else _Runner()
        # The parent is the greenlet running the loop now: the job switches
        # back to it at each crossing and at its end.
        runner.parent = getcurrent()
        return runner

    @staticmethod
    def _give_back(runner: _Runner) -> None:
        runner.gr_context = None
        runners: list[_Runner] | None = getattr(_idle, "runners", None)
        if runners is None:
            runners = _idle.runners = []
        if len(runners) < MAX_IDLE_RUNNERS:
            runners.append(runner)

    async def run(self, fn: Callable[[_Exchange], T], exchange: _Exchange) -> T:
        runner = self._borrow()
        # The app sees the server task's context variables, as in a worker thread.
        runner.gr_context = contextvars.copy_context()
        runner.busy = True
        try:
            value = runner.switch((fn, exchange))
            result: T = await self._drive(runner, value, exchange, watching=False)
            return result
        finally:
            if runner.busy:  # cancelled, or an error of ours: never leave it half-run
                _finish_job(runner, exchange)
            if not runner.busy and not runner.dead:
                self._give_back(runner)

    async def _drive(
        self, runner: _Runner, value: Any, exchange: _Exchange, *, watching: bool
    ) -> Any:
        while True:
            if value is _ENDED:
                outcome, runner.outcome = runner.outcome, None
                assert outcome is not None
                if outcome[0] == _FAILED:
                    raise outcome[1]
                return outcome[1]
            # Start the watcher from the second chunk on: a one-chunk response
            # (most responses: Flask, Django) never pays for it.
            if not watching and exchange.pushes > 1 and exchange.can_watch():
                resume = functools.partial(self._drive, runner, value, exchange, watching=True)
                return await _watched(exchange, resume)
            fn, args = value
            try:
                if watching:  # the watcher may abort() this crossing
                    result = await exchange.crossing(fn, *args)
                else:
                    result = await exchange.direct_crossing(fn, *args)
            except Exception as exc:
                value = runner.throw(exc)
            except BaseException:
                # The request task was cancelled: close() runs in the greenlet
                # now (run's finally), then the cancellation goes on.
                exchange.abort("the request task was cancelled")
                raise
            else:
                value = runner.switch(result)
            if watching:
                # A server's send() need not suspend; without a checkpoint a
                # long stream would starve the loop (and the watcher).
                await anyio.lowlevel.checkpoint()

    async def run_plain(self, fn: Callable[[], object]) -> None:
        # Lifespan hooks typically block (connect to a database, run
        # migrations): they run in a worker thread, not inline.
        await anyio.to_thread.run_sync(fn)

    def call_async(self, exchange: _Exchange, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        current = getcurrent()
        if not isinstance(current, _Runner):
            raise RuntimeError("call_async() outside the greenlet of a WsgiToAsgi request")
        result: T = current.parent.switch((fn, args))
        return result

    def emit(self, exchange: _Exchange, start: Message | None, body: Item) -> None:
        self.call_async(exchange, _send_start_and_body, exchange, start, body)


def _finish_job(runner: _Runner, exchange: _Exchange) -> None:
    """Throw :class:`ClientDisconnected` into ``runner`` until its job has ended (rule 3)."""
    reason = exchange.abort_reason or "the request was aborted"
    for _ in range(_MAX_THROWS):
        if not runner.busy or runner.dead:
            return
        if runner.throw(ClientDisconnected(reason)) is _ENDED:
            outcome, runner.outcome = runner.outcome, None
            if outcome is not None and outcome[0] == _FAILED:
                error = outcome[1]
                if not isinstance(error, ClientDisconnected):  # the usual end, after close()
                    logger.debug("the WSGI app raised while being stopped", exc_info=error)
    if runner.busy and not runner.dead:
        logger.error("a WSGI app kept running after %d disconnects; abandoning it", _MAX_THROWS)
