"""bridge.wakeup: waking the running loop from another thread, on asyncio and trio."""

from __future__ import annotations

import threading

import anyio
import pytest

from bridge.wakeup import current_call_soon, current_new_event

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
    assert type(event).__module__.split(".")[0] == anyio_backend


def test_outside_a_loop_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        current_new_event()
    with pytest.raises(RuntimeError):
        current_call_soon()
