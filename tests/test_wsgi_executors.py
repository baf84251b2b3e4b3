"""bridge.wsgi_executors: the worker pool under the thread executor."""

from __future__ import annotations

import threading
import weakref

import pytest

from bridge.wsgi_executors import WorkerPool

pytestmark = pytest.mark.timeout(30)


class _Payload:
    """Stands for a request's environ and body: something a job keeps alive."""


def test_a_finished_job_releases_its_arguments() -> None:
    pool = WorkerPool()
    ran = threading.Event()
    payload = _Payload()
    ref = weakref.ref(payload)
    pool.submit(lambda item: ran.set(), payload)
    del payload
    assert ran.wait(10)
    # The worker drops its job before it waits for the next one (it used to
    # hold the last request's objects until then, up to the idle timeout).
    released = threading.Event()
    for _ in range(1000):
        if ref() is None:
            released.set()
            break
        released.wait(0.01)
    assert released.is_set(), "the worker still holds the finished job's arguments"


def test_an_idle_worker_takes_the_next_job() -> None:
    pool = WorkerPool()
    names: list[str] = []
    done = threading.Event()

    def record() -> None:
        names.append(threading.current_thread().name)
        done.set()

    pool.submit(record)
    assert done.wait(10)
    # Wait until the worker has counted itself idle, then submit again.
    idle = threading.Event()
    for _ in range(1000):
        if pool._idle == 1:
            idle.set()
            break
        idle.wait(0.01)
    assert idle.is_set()
    done.clear()
    pool.submit(record)
    assert done.wait(10)
    assert names[0] == names[1]
    assert pool._started == 1
