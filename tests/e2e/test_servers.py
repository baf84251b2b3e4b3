"""The server harness itself: registry, fail-fast startup, reliable stop."""

from __future__ import annotations

import os
import signal
import sys
import time

import httpx
import pytest

from compat_suite.servers import (
    SERVERS,
    ServerStartError,
    available_servers,
    launch,
    serve,
    unavailable_servers,
)


def test_registry_knows_both_interfaces() -> None:
    assert {"uvicorn", "hypercorn", "hypercorn-trio", "granian-asgi"} <= set(
        available_servers("asgi")
    )
    assert {"gunicorn-sync", "gunicorn-gthread", "gunicorn-preload", "waitress", "wsgiref"} <= set(
        available_servers("wsgi")
    )
    assert set(available_servers()) | set(unavailable_servers()) == set(SERVERS)


def test_startup_fails_fast_with_the_server_log() -> None:
    with (
        pytest.raises(ServerStartError, match="exited with status") as excinfo,
        serve("uvicorn", "compat_suite.apps.no_such_module:app"),
    ):
        pytest.fail("the server should not have started")
    assert "no_such_module" in str(excinfo.value)


def _dead(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            return any(line.startswith("State:\tZ") for line in status)  # a zombie is dead
    except FileNotFoundError:
        return True


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_stop_kills_a_server_group_that_ignores_sigterm() -> None:
    # A "server" that ignores SIGTERM and forks a worker that does too: the stop
    # deadline passes, then the whole process group is killed.
    script = (
        "import os, signal, socket, sys\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "sock = socket.create_server(('127.0.0.1', int(sys.argv[1])))\n"
        "if os.fork() == 0:\n"
        "    print('worker', os.getpid(), flush=True)\n"
        "signal.pause()\n"
    )
    with launch(
        "stubborn",
        lambda host, port: [sys.executable, "-c", script, str(port)],
        stop_timeout=0.5,
        keep_log=True,
    ) as server:
        assert os.getpgid(server.pid) == server.pid
    try:
        log = server.log_path.read_text()
    finally:
        server.log_path.unlink()
    worker = int(log.split()[1])
    # Before the kill, the hung leader was asked for its stacks, and gave them.
    assert "still running 0.5 s after SIGTERM" in log
    assert "Fatal Python error: Aborted" in log
    assert "signal.pause" in log or "<module>" in log
    deadline = time.monotonic() + 5
    while not _dead(worker):
        assert time.monotonic() < deadline, f"worker {worker} survived the stop"
        time.sleep(0.01)  # polling a process state with a deadline
    assert _dead(server.pid)


@pytest.mark.skipif(not SERVERS["waitress"].available, reason="waitress is not installed")
def test_waitress_stops_on_sigint_even_when_the_caller_ignores_it() -> None:
    # A shell starts background jobs with SIGINT ignored, and children inherit
    # that: waitress, which stops on SIGINT, must still stop gracefully.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with serve(
            "waitress", "compat_suite.apps.hello_wsgi:app", keep_log=True, stop_timeout=10
        ) as server:
            assert httpx.get(server.base_url + "/").status_code == 200
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        log = server.log_path.read_text()
    finally:
        server.log_path.unlink()
    assert "still running" not in log, log
