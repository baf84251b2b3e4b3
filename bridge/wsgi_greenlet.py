"""The greenlet executor: the WSGI app inline on the event loop's thread (W→A).

Rules (the executor seam is :mod:`bridge.wsgi_executors`; this is its second side):
1. The app runs in a greenlet on the loop's own thread. Each blocking point of
   the app (a lazy ``wsgi.input`` read, a response chunk, ``write()``)
   switches to the request task, which awaits the ASGI call and switches back
   with its result, or throws its exception in: no thread hop at all.
2. Greenlets are reused. Starting a fresh one (its first switch, and its
   death) costs about 8 µs, more than the rest of a small request; switching
   into a suspended one costs about 0.4 µs. A request borrows an idle runner
   from its thread's pool and gives it back once its job has ended; a runner
   holds nothing of a finished job.
3. Every exit leaves the job ended (rule 3 of :mod:`bridge.wsgi_executors`):
   on cancellation or an error of ours, ``ClientDisconnected`` is thrown in
   until the app has run ``close()`` and returned.
4. While the disconnect watcher runs (a streamed response), one cancel scope
   covers the whole phase and :meth:`~bridge.wsgi_exchange._Exchange.abort`
   cancels it: a scope per crossing costs more than the crossing itself.
   A server's ``send()`` need not suspend, so the stream yields to the loop
   itself, through the backend's own checkpoint (anyio's costs three times
   as much), for the loop and the watcher to run: once
   :data:`CHECKPOINT_BYTES` of body, or :data:`CHECKPOINT_CHUNKS` chunks,
   have crossed since the last yield, whichever comes first. A yield costs
   a pass of the loop and resumes every frame of the request's await chain:
   yielding at every 4 KiB chunk halved such a stream's speed in process on
   asyncio's own loop, and took a sixth of uvicorn's user CPU on uvloop.
   Yielding every 256 KiB rather than every 64 KiB took a 1 MiB download in
   64 KiB chunks from 688k to 601k instructions in process (callgrind); the
   loop still runs at least every 256 KiB, about 130 µs of the 520 µs of
   server CPU such a download costs on uvicorn. The bound is in chunks and
   bytes, never time: once the client is gone, a server may drop what is
   sent at almost no cost, and a time slice would let thousands of chunks
   through before the watcher runs; this way at most 16 go.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
from greenlet import GreenletExit, getcurrent, greenlet

from bridge.errors import ClientDisconnected
from bridge.types import Message
from bridge.wakeup import current_checkpoint
from bridge.wsgi_executors import _send_start_and_body, _watched
from bridge.wsgi_outbox import Item

if TYPE_CHECKING:
    from bridge.wsgi_exchange import _Exchange

__all__ = ["CHECKPOINT_BYTES", "CHECKPOINT_CHUNKS", "MAX_IDLE_RUNNERS", "GreenletExecutor"]

logger = logging.getLogger("bridge")

T = TypeVar("T")

# A greenlet that ignores ClientDisconnected this many times is left to the
# garbage collector (with an error logged) rather than looping forever.
_MAX_THROWS = 100

#: Idle runner greenlets kept per thread for the next requests.
MAX_IDLE_RUNNERS = 64

#: A stream yields to the loop once this many body bytes crossed since its last yield (rule 4).
CHECKPOINT_BYTES = 256 * 1024
#: ... or once this many chunks did, whichever comes first.
CHECKPOINT_CHUNKS = 16

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

    async def run(self, fn: Callable[[_Exchange], T], exchange: _Exchange) -> T:
        # Borrow an idle runner (rule 2), written out here: the two calls a
        # helper per side would take cost more than what they do.
        runners: list[_Runner] | None = getattr(_idle, "runners", None)
        if runners is None:
            runners = _idle.runners = []
        runner = runners.pop() if runners else _Runner()
        # The parent is the greenlet running the loop now: the job switches
        # back to it at each crossing and at its end.
        runner.parent = getcurrent()
        # The app sees the server task's context variables, as in a worker thread.
        runner.gr_context = contextvars.copy_context()
        runner.busy = True
        try:
            value = runner.switch((fn, exchange))
            if value is _ENDED:
                # No crossing at all (a list body, most responses): no
                # coroutine to start for _drive.
                result: T = _outcome(runner)
            else:
                result = await self._drive(runner, value, exchange)
            return result
        finally:
            if runner.busy:  # cancelled, or an error of ours: never leave it half-run
                _finish_job(runner, exchange)
            if not runner.busy and not runner.dead:
                # Give it back, holding nothing of this request.
                runner.gr_context = None
                if len(runners) < MAX_IDLE_RUNNERS:
                    runners.append(runner)

    async def _drive(self, runner: _Runner, value: Any, exchange: _Exchange) -> Any:
        while value is not _ENDED:
            # Start the watcher from the second chunk on: a one-chunk response
            # (most responses: Flask, Django) never pays for it.
            if exchange.pushes > 1 and exchange.can_watch():
                return await _watched(exchange, self._drive_watched, runner, value, exchange)
            value = await _cross(runner, value, exchange)
        return _outcome(runner)

    async def _drive_watched(self, runner: _Runner, value: Any, exchange: _Exchange) -> Any:
        """:meth:`_drive` while the disconnect watcher runs (rule 4)."""
        checkpoint = current_checkpoint()
        send = exchange.send
        # One cancel scope for the whole phase, which abort() cancels, rather
        # than one per crossing: a scope costs more than the rest of a crossing.
        with exchange.guarded():
            chunks = nbytes = 0
            while value is not _ENDED:
                nbytes += _body_size(value, send)
                chunks += 1
                value = await _cross(runner, value, exchange)
                if value is not _ENDED and (
                    nbytes >= CHECKPOINT_BYTES or chunks >= CHECKPOINT_CHUNKS
                ):
                    chunks = nbytes = 0
                    await checkpoint()  # let the loop and the watcher run (rule 4)
            return _outcome(runner)
        # abort() cancelled the phase: the crossing the job waits for fails,
        # and so does every later one (abort_reason is set), until it ends.
        reason = exchange.abort_reason or "the request was aborted"
        return await self._drive(runner, runner.throw(ClientDisconnected(reason)), exchange)

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
        runner = getcurrent()
        if not isinstance(runner, _Runner):
            raise RuntimeError("emit() outside the greenlet of a WsgiToAsgi request")
        if start is None and type(body) is bytes:
            # A chunk of a streamed body, the common crossing: the task awaits
            # send() itself, one coroutine frame instead of two (rule 1).
            if body:
                message = {"type": "http.response.body", "body": body, "more_body": True}
                runner.parent.switch((exchange.send, (message,)))
            return
        runner.parent.switch((_send_start_and_body, (exchange, start, body)))


async def _cross(runner: _Runner, value: tuple[Any, Any], exchange: _Exchange) -> Any:
    """Run the crossing the job switched out, switch its result (or error) back in.

    :returns: what the job switches out next: a crossing, or :data:`_ENDED`.
    """
    fn, args = value
    # _Exchange.crossing without its cancel scope (rule 4 says when one
    # covers the phase), written out here: another coroutine frame per
    # crossing would cost more than the check.
    if exchange.abort_reason is not None:
        return runner.throw(ClientDisconnected(exchange.abort_reason))
    try:
        result = await fn(*args)
    except OSError as exc:
        exchange.send_failed(exc)
        return runner.throw(exc)
    except Exception as exc:
        return runner.throw(exc)
    except BaseException:
        # The request task was cancelled: close() runs in the greenlet now
        # (run's finally), then the cancellation goes on.
        exchange.abort("the request task was cancelled")
        raise
    return runner.switch(result)


def _body_size(crossing: tuple[Any, Any], send: Any) -> int:
    """The body bytes ``crossing`` sends; any other crossing counts as a whole yield's worth.

    :param send: the request's ASGI ``send``, which a body chunk's crossing calls.
    """
    fn, args = crossing
    if fn is send:
        chunk: bytes = args[0]["body"]  # (message,): GreenletExecutor.emit
        return len(chunk)
    if fn is _send_start_and_body:
        body = args[2]  # (exchange, start, body): GreenletExecutor.emit
        if type(body) is bytes:
            return len(body)
    return CHECKPOINT_BYTES


def _outcome(runner: _Runner) -> Any:
    """The ended job's return value; or raise what it raised."""
    outcome, runner.outcome = runner.outcome, None
    assert outcome is not None
    if outcome[0] == _FAILED:
        raise outcome[1]
    return outcome[1]


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
