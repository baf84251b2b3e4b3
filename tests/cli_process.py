"""Run ``python -m bridge serve ...`` as a real subprocess on a free 127.0.0.1 port.

Readiness is "the port accepts a TCP connection", polled against a deadline
while watching the process; stopping is SIGTERM, a bounded wait, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


@dataclass
class CliServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def run_bridge(args: Sequence[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bridge ARGS`` to completion (``inspect``, errors)."""
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _stop(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # workers a master left behind


@contextlib.contextmanager
def bridge_serve(
    args: Sequence[str], startup_timeout: float = 45.0, env: Mapping[str, str] | None = None
) -> Iterator[CliServer]:
    """``python -m bridge serve ARGS --port <free>``, yielded once it listens.

    :param env: variables added to this process's environment for the server.
    """
    for attempt in range(3):
        port = _free_port()
        fd, name = tempfile.mkstemp(prefix="bridge-cli-", suffix=".log")
        log_path = Path(name)
        with os.fdopen(fd, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "bridge", "serve", *args, "--port", str(port)],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=None if env is None else {**os.environ, **env},
            )
        try:
            deadline = time.monotonic() + startup_timeout
            while not _accepts(port):
                if process.poll() is not None:
                    text = log_path.read_text(errors="replace")
                    if "address already in use" in text.lower() and attempt < 2:
                        break
                    raise AssertionError(f"bridge serve exited {process.returncode}:\n{text}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"bridge serve did not listen:\n{log_path.read_text()}")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=0.05)
            else:
                server = CliServer(f"http://{HOST}:{port}", process, log_path)
                try:
                    yield server
                except Exception as exc:
                    raise AssertionError(f"{exc!r}; server log:\n{server.log()}") from exc
                return
        finally:
            _stop(process)
            log_path.unlink(missing_ok=True)
    raise AssertionError("no free port after 3 attempts")
