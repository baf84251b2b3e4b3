"""bridge.wsgi_outbox and bridge.wakeup: the worker→loop queue, its bound and coalescing."""

from __future__ import annotations

import contextlib
import threading
import tracemalloc
from collections.abc import AsyncIterator, Callable

import anyio
import anyio.to_thread
import pytest

from bridge.errors import ClientDisconnected
from bridge.wakeup import current_call_soon, current_new_event
from bridge.wsgi_io import SMALL_CHUNK
from bridge.wsgi_outbox import Item, Outbox, coalesce

pytestmark = pytest.mark.anyio

END = {"type": "http.response.body", "body": b"", "more_body": False}


def test_coalesce_joins_runs_within_the_limit() -> None:
    start = {"type": "http.response.start", "status": 200, "headers": []}
    batch: list[Item] = [start, b"ab", b"cd", b"efg", b"h" * 10, END]
    messages, nbytes = coalesce(batch, limit=7)
    assert nbytes == 17
    assert messages == [
        start,
        {"type": "http.response.body", "body": b"abcdefg", "more_body": True},
        # a chunk larger than the limit goes alone, never split; END folds in
        {"type": "http.response.body", "body": b"h" * 10, "more_body": False},
    ]


def test_coalesce_sends_large_chunks_alone() -> None:
    # Joining large chunks would only copy them (wsgi_outbox rule 4).
    batch: list[Item] = [b"a", b"b", b"L" * 8, b"c", b"M" * 9, b"N" * 8, END]
    messages, nbytes = coalesce(batch, limit=100, join_below=8)
    assert nbytes == 28
    assert [m["body"] for m in messages] == [b"ab", b"L" * 8, b"c", b"M" * 9, b"N" * 8]
    assert [m["more_body"] for m in messages] == [True, True, True, True, False]


def test_coalesce_keeps_a_lone_end() -> None:
    assert coalesce([END], limit=10) == ([END], 0)


async def test_wakeup_from_a_thread() -> None:
    call_soon = current_call_soon()
    event = anyio.Event()
    await anyio.to_thread.run_sync(call_soon, event.set)
    with anyio.fail_after(10):
        await event.wait()


@contextlib.asynccontextmanager
async def running(outbox: Outbox, worker: Callable[[], None]) -> AsyncIterator[None]:
    """Run ``worker`` in a thread for the block; a failing block aborts ``outbox``.

    A worker blocked in ``put`` would otherwise keep the task group, and the
    failing test with it, waiting forever instead of reporting the failure.
    """
    async with anyio.create_task_group() as group:
        group.start_soon(anyio.to_thread.run_sync, worker)
        try:
            yield
        except BaseException:
            outbox.abort("the test failed")
            raise


async def test_outbox_blocks_the_worker_beyond_the_limit_and_abort_wakes_it() -> None:
    outbox = Outbox(current_call_soon(), 4, current_new_event())
    blocked = threading.Event()
    errors: list[BaseException] = []

    def worker() -> None:
        outbox.put(None, b"abc")  # within the limit: returns
        blocked.set()
        try:
            outbox.put(None, b"defg")  # 7 > 4: blocks until sent or aborted
        except ClientDisconnected as exc:
            errors.append(exc)
        outbox.finish("done", None)

    async with running(outbox, worker):
        batch, _ = await outbox.take()
        # What was queued by then; small chunks are gathered (rule 5).
        assert batch in ([b"abc"], [b"abcdefg"])
        # Nothing is reported sent: the second put blocks (or finds the abort).
        await anyio.to_thread.run_sync(blocked.wait)
        outbox.abort("gone")
        with anyio.fail_after(10):
            await outbox.wait_done()
    assert outbox.outcome == "done"
    assert len(errors) == 1
    assert await outbox.take() == ([], True)


async def test_a_blocked_worker_resumes_once_half_the_limit_is_free() -> None:
    # Rule 2: one wake-up lets the worker queue several chunks, not one.
    outbox = Outbox(current_call_soon(), 4, current_new_event())
    pending_at_return: list[int] = []

    def worker() -> None:
        outbox.put(None, b"abcd")
        outbox.put(None, b"efgh")  # 8 > 4: blocks
        pending_at_return.append(outbox._pending)
        outbox.finish(None, None)

    async with running(outbox, worker):
        # Take both chunks before reporting anything sent: the second put has
        # then found 8 bytes pending, over the limit, so the worker waits.
        taken: list[bytes] = []
        with anyio.fail_after(10):
            while sum(map(len, taken)) < 8:
                batch, _ = await outbox.take()
                taken += [chunk for chunk in batch if isinstance(chunk, bytes)]
        for _ in range(sum(map(len, taken))):  # report the bytes sent one by one
            outbox.sent(1)
        with anyio.fail_after(10):
            await outbox.wait_done()
    assert pending_at_return[0] <= 2


async def test_small_chunks_are_gathered_in_order_and_never_held_back() -> None:
    # Rule 5: small chunks become pieces of SMALL_CHUNK bytes; a larger chunk
    # or a message ends the piece being gathered; take() takes that piece too.
    outbox = Outbox(current_call_soon(), 1 << 20, current_new_event())
    start = {"type": "http.response.start", "status": 200, "headers": []}
    large = b"L" * SMALL_CHUNK
    outbox.put(start, b"a")
    for _ in range(SMALL_CHUNK):
        outbox.put(None, b"b")
    outbox.put(None, large)
    outbox.put(None, b"c")
    outbox.put(None, END)
    outbox.put(None, b"d")  # after a message: a new piece
    batch, done = await outbox.take()
    assert not done
    assert batch == [start, b"a" + b"b" * (SMALL_CHUNK - 1), b"b", large, b"c", END, b"d"]
    outbox.finish(None, None)
    assert await outbox.take() == ([], True)
    # Whatever message comes with a chunk goes after the piece being gathered.
    other = Outbox(current_call_soon(), 1 << 20, current_new_event())
    other.put(None, b"a")
    other.put(start, b"b")
    assert await other.take() == ([b"a", start, b"b"], False)


def test_tiny_chunks_take_the_memory_of_their_bytes() -> None:
    # Rule 5: 200 KB queued as 2-byte chunks, each a fresh object as an app
    # makes them; kept as they came they would hold about 4.3 MB.
    outbox = Outbox(lambda callback: None, 1 << 20, threading.Event)  # type: ignore[arg-type]
    pieces = [bytes(bytearray(b"%02d" % (i % 100))) for i in range(100_000)]
    tracemalloc.start()
    try:
        for piece in pieces:
            outbox.put(None, piece)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 1.2 * 200_000, f"{held} bytes held for 200,000 bytes queued"
