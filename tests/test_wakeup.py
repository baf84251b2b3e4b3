"""bridge.wakeup: waking the running loop from another thread, on asyncio and trio."""

from __future__ import annotations

import threading

import anyio
import pytest

from bridge.wakeup import FutureEvent, current_call_soon, current_checkpoint, current_new_event

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


async def test_a_thread_wakes_a_waiter_on_the_loop(anyio_backend: str) -> None:
    event = current_new_event()()
    call_soon = current_call_soon()
    loop_thread = threading.get_ident()
    set_on: list[int] = []

    def set_it() -> None:
        set_on.append(threading.get_ident())
        event.set()

    thread = threading.Thread(target=call_soon, args=(set_it,))
    thread.start()
    with anyio.fail_after(10):
        await event.wait()
    thread.join()
    assert event.is_set()
    assert set_on == [loop_thread]  # the callback ran on the loop, not in the thread


async def test_the_event_is_the_backends_own(anyio_backend: str) -> None:
    event = current_new_event()()
    if anyio_backend == "trio":
        assert type(event).__module__.split(".")[0] == "trio"
    else:
        # One bare future of the running asyncio loop (wakeup rule 4).
        assert type(event) is FutureEvent


async def test_an_event_set_before_the_wait_does_not_block(anyio_backend: str) -> None:
    event = current_new_event()()
    assert not event.is_set()
    event.set()
    event.set()  # idempotent
    assert event.is_set()
    with anyio.fail_after(10):
        await event.wait()


async def test_a_cancelled_wait_leaves_the_event_unset_and_settable(anyio_backend: str) -> None:
    event = current_new_event()()
    with anyio.move_on_after(0) as scope:
        await event.wait()
    assert scope.cancelled_caught
    event.set()  # the waiter is gone: no error, whatever it was waiting on
    if anyio_backend == "asyncio":
        assert not event.is_set()  # the future was cancelled with its waiter


async def test_the_checkpoint_lets_other_tasks_run(anyio_backend: str) -> None:
    checkpoint = current_checkpoint()
    ran = anyio.Event()

    async def other() -> None:
        ran.set()

    async with anyio.create_task_group() as group:
        group.start_soon(other)
        # The task started above has not run yet; checkpoints let it (trio
        # shuffles its run queue, so maybe not the first one).
        assert not ran.is_set()
        for _ in range(100):
            await checkpoint()
            if ran.is_set():
                break
        assert ran.is_set()


async def test_the_checkpoint_delivers_cancellation(anyio_backend: str) -> None:
    checkpoint = current_checkpoint()
    with anyio.CancelScope() as scope:
        scope.cancel()
        await checkpoint()
        pytest.fail("the checkpoint did not deliver the cancellation")
    assert scope.cancelled_caught


def test_outside_a_loop_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        current_checkpoint()
    with pytest.raises(RuntimeError):
        current_new_event()
    with pytest.raises(RuntimeError):
        current_call_soon()
