"""bridge.limiter.TokenLimiter: the thread executor's bound, on asyncio and trio."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from bridge.limiter import TokenLimiter

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


def test_at_least_one_token() -> None:
    with pytest.raises(ValueError, match="at least one token"):
        TokenLimiter(0)


async def test_a_free_token_is_taken_without_yielding() -> None:
    limiter = TokenLimiter(2)
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    async with anyio.create_task_group() as group:
        group.start_soon(other)
        await limiter.acquire()  # no checkpoint: the other task has not run yet
        assert ran == []
        await limiter.acquire()
        assert ran == []
    assert limiter.borrowed == 2


async def test_waiters_are_served_in_order_within_the_bound() -> None:
    limiter = TokenLimiter(1)
    order: list[int] = []
    holding = 0
    most = 0

    async def worker(n: int, started: anyio.Event) -> None:
        nonlocal holding, most
        started.set()
        await limiter.acquire()
        holding += 1
        most = max(most, holding)
        order.append(n)
        await anyio.lowlevel.checkpoint()
        holding -= 1
        limiter.release()

    await limiter.acquire()
    async with anyio.create_task_group() as group:
        for n in range(5):
            started = anyio.Event()
            group.start_soon(worker, n, started)
            await started.wait()
        limiter.release()
    assert order == [0, 1, 2, 3, 4]
    assert most == 1
    assert limiter.borrowed == 0


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    limiter = TokenLimiter(1)
    await limiter.acquire()
    with anyio.move_on_after(0.01):
        await limiter.acquire()
    limiter.release()
    assert limiter.borrowed == 0
    await limiter.acquire()  # free again at once
    assert limiter.borrowed == 1


async def test_a_token_handed_to_a_cancelled_waiter_is_passed_on() -> None:
    limiter = TokenLimiter(1)
    await limiter.acquire()
    got_it: list[str] = []

    async def waiter(name: str, scope_out: list[anyio.CancelScope]) -> None:
        with anyio.CancelScope() as scope:
            scope_out.append(scope)
            await limiter.acquire()
            got_it.append(name)
            limiter.release()

    first: list[anyio.CancelScope] = []
    second: list[anyio.CancelScope] = []
    async with anyio.create_task_group() as group:
        group.start_soon(waiter, "first", first)
        group.start_soon(waiter, "second", second)
        await anyio.wait_all_tasks_blocked()
        # Cancel "first" while it waits, then release before it has resumed:
        # the token is set aside for it, and it must pass it on.
        first[0].cancel()
        limiter.release()
    assert got_it == ["second"]
    assert limiter.borrowed == 0
