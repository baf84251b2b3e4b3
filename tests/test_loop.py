"""bridge.loop: the private event loop (lazy start, sharing, fork safety, E11)."""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any, Literal

import anyio
import pytest

from bridge import AsgiToWsgi
from bridge import loop as loop_module
from bridge.loop import get_loop, stop_all_loops
from bridge.types import Receive, Scope, Send


@pytest.fixture(autouse=True)
def _stop_loops() -> Iterator[None]:
    stop_all_loops()
    yield
    stop_all_loops()


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("bridge-loop")]


async def whoami(scope: Scope, receive: Receive, send: Send) -> None:
    body = json.dumps({"pid": os.getpid(), "thread": threading.get_ident()}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def environ() -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "x",
        "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
    }


def request(adapter: AsgiToWsgi) -> dict[str, Any]:
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None, /) -> Any:
        statuses.append(status)

    iterable = adapter(environ(), start_response)
    body = b"".join(iterable)
    assert statuses == ["200 OK"]
    result: dict[str, Any] = json.loads(body)
    return result


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_loop_starts_lazily_and_is_shared(backend: Literal["asyncio", "trio"]) -> None:
    first = AsgiToWsgi(whoami, lifespan="off", backend=backend)
    second = AsgiToWsgi(whoami, lifespan="off", backend=backend)
    assert loop_threads() == []  # E11: nothing before the first request
    thread_one = request(first)["thread"]
    assert len(loop_threads()) == 1
    assert request(second)["thread"] == thread_one  # one loop per process and backend
    assert get_loop(backend).thread_ident == thread_one
    assert all(t.daemon for t in loop_threads())


def test_backends_and_options_get_their_own_loops() -> None:
    asyncio_loop = get_loop("asyncio")
    trio_loop = get_loop("trio")
    debug_loop = get_loop("asyncio", {"debug": True})
    assert len({id(asyncio_loop), id(trio_loop), id(debug_loop)}) == 3
    assert get_loop("asyncio") is asyncio_loop


def test_unknown_backend_is_rejected() -> None:
    with pytest.raises(ValueError, match="backend"):
        get_loop("curio")
    with pytest.raises(ValueError, match="backend"):
        AsgiToWsgi(whoami, backend="curio")  # type: ignore[arg-type]


async def loop_kind(scope: Scope, receive: Receive, send: Send) -> None:
    import asyncio

    body = json.dumps({"loop": type(asyncio.get_running_loop()).__module__}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_asyncio_uses_uvloop_when_installed_unless_told_otherwise() -> None:
    pytest.importorskip("uvloop")  # a test dependency (uvicorn[standard])
    default = AsgiToWsgi(loop_kind, lifespan="off")
    assert default.backend_options == {"use_uvloop": True}
    assert request(default)["loop"].startswith("uvloop")
    plain = AsgiToWsgi(loop_kind, lifespan="off", backend_options={})
    assert request(plain)["loop"].startswith("asyncio")
    assert AsgiToWsgi(loop_kind, backend="trio").backend_options == {}


def test_bad_backend_options_fail_clearly(caplog: pytest.LogCaptureFixture) -> None:
    # trio.run rejects unknown keywords (anyio's asyncio backend ignores them).
    with pytest.raises(RuntimeError, match="could not start"):
        get_loop("trio", {"no_such_option": 1})
    assert "loop crashed" in caplog.text


def test_stop_all_loops_joins_threads_and_restarts_lazily() -> None:
    adapter = AsgiToWsgi(whoami, lifespan="off")
    request(adapter)
    old = get_loop()
    stop_all_loops()
    assert loop_threads() == []
    assert not old.running
    with pytest.raises(RuntimeError, match="not running"):
        old.spawn(lambda: whoami({}, None, None))  # type: ignore[arg-type]
    request(adapter)  # a fresh loop, started on demand
    assert get_loop() is not old


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_burst_of_spawns_wakes_the_loop_once(backend: Literal["asyncio", "trio"]) -> None:
    # Rule 6: spawns queued while the loop is busy share one wake-up.
    loop = get_loop(backend)
    wakeups: list[object] = []
    call_soon = loop.call_soon

    def counting_call_soon(fn: Any, *args: Any) -> object:
        wakeups.append(fn)
        return call_soon(fn, *args)

    busy = threading.Event()
    release = threading.Event()

    def hold() -> None:
        busy.set()
        release.wait(10)

    call_soon(hold)  # keep the loop busy while the spawns arrive
    assert busy.wait(10)
    ran: list[int] = []
    done = threading.Event()

    def job(n: int) -> Any:
        async def body() -> None:
            ran.append(n)
            if len(ran) == 20:
                done.set()

        return body

    loop.call_soon = counting_call_soon
    try:
        for n in range(20):
            loop.spawn(job(n))
    finally:
        loop.call_soon = call_soon
        release.set()
    assert done.wait(10)
    assert sorted(ran) == list(range(20))
    assert len(wakeups) == 1


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_blocking_from_the_loop_thread_raises(backend: Literal["asyncio", "trio"]) -> None:
    # E11: "Never block on the loop from its own thread."
    adapter = AsgiToWsgi(whoami, lifespan="off", backend=backend)
    request(adapter)
    loop = get_loop(backend)
    with pytest.raises(RuntimeError, match="own event loop thread"):
        loop.portal.call(lambda: request(adapter))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_fork_child_gets_a_fresh_loop(backend: Literal["asyncio", "trio"]) -> None:
    # E11: a forked child never touches the parent's (dead) loop thread.
    adapter = AsgiToWsgi(whoami, lifespan="off", backend=backend)
    parent = request(adapter)
    parent_loop = get_loop(backend)
    generation = loop_module.generation
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python >= 3.12 warns about fork() in a multi-threaded process; that is the point.
        warnings.filterwarnings("ignore", "This process .* multi-threaded", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        status = 1
        try:
            os.close(read_end)
            # The parent's loop object says its thread is gone, and refuses work.
            dead = not parent_loop.running
            try:
                parent_loop.spawn(lambda: whoami({}, None, None))  # type: ignore[arg-type]
            except RuntimeError:
                refused = True
            else:
                refused = False
            child = request(adapter)
            report = {
                "parent_loop_dead": dead and refused,
                "ok": child["pid"] == os.getpid() == get_loop(backend).pid,
                "generation_bumped": loop_module.generation == generation + 1,
                "child": child,
            }
            os.write(write_end, json.dumps(report).encode())
            status = 0
        except BaseException as exc:
            os.write(write_end, json.dumps({"error": repr(exc)}).encode())
        finally:
            os._exit(status)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, wait_status = os.waitpid(pid, 0)
    report = json.loads(b"".join(chunks))
    assert report.get("ok"), report
    assert report["parent_loop_dead"]
    assert report["generation_bumped"]
    assert os.waitstatus_to_exitcode(wait_status) == 0
    # The parent's loop is untouched.
    assert request(adapter)["thread"] == parent["thread"]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("delay", [0.0, 0.01])
def test_cancel_later_cancels_the_task(backend: Literal["asyncio", "trio"], delay: float) -> None:
    # Rule 5: a request task is cancelled through the loop's native handle.
    loop = get_loop(backend)
    cancelled = threading.Event()

    async def task() -> None:
        with loop.cancel_handle() as handle:
            loop.cancel_later(handle, delay)
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                cancelled.set()
                raise

    loop.spawn(task)
    assert cancelled.wait(30)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_cancel_later_disarmed_leaves_the_task_alone(backend: Literal["asyncio", "trio"]) -> None:
    # Both backends hand back something whose cancel() disarms the cancellation.
    loop = get_loop(backend)
    outcome: list[str] = []
    done = threading.Event()

    async def task() -> None:
        try:
            with loop.cancel_handle() as handle:
                loop.cancel_later(handle, 0.0).cancel()
                event = loop.new_event()
                loop.call_soon(event.set)
                await event.wait()
                outcome.append("finished")
        finally:
            done.set()

    loop.spawn(task)
    assert done.wait(30)
    assert outcome == ["finished"]
