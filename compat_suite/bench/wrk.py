"""Run ``wrk`` against a URL and read its summary.

Uploads use a Lua script, written to a temporary file, that sets the method and
a body of the workload's size; ``wrk.format`` adds the ``Content-Length``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from compat_suite.bench.workloads import Workload

__all__ = ["WrkError", "WrkResult", "parse_wrk_output", "run_wrk", "wrk_path", "wrk_version"]


class WrkError(RuntimeError):
    """wrk failed, or its output had no summary."""


@dataclass(frozen=True)
class WrkResult:
    """The parts of wrk's summary the benchmark uses.

    :param requests_per_second: the ``Requests/sec`` line.
    :param transfer_bytes_per_second: the ``Transfer/sec`` line (bytes received), in bytes.
    :param requests: completed requests.
    :param errors: socket errors plus non-2xx/3xx responses.
    """

    requests_per_second: float
    transfer_bytes_per_second: float
    requests: int
    errors: int


_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_RPS = re.compile(r"^Requests/sec:\s*([0-9.]+)", re.MULTILINE)
_TRANSFER = re.compile(r"^Transfer/sec:\s*([0-9.]+)([KMGT]?B)?", re.MULTILINE)
_DONE = re.compile(r"^\s*(\d+) requests in", re.MULTILINE)
_SOCKET = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def parse_wrk_output(text: str) -> WrkResult:
    """Read wrk's human summary.

    :param text: wrk's stdout.
    :raises WrkError: when the ``Requests/sec`` or ``Transfer/sec`` line is missing.
    """
    rps = _RPS.search(text)
    transfer = _TRANSFER.search(text)
    if rps is None or transfer is None:
        raise WrkError(f"no summary in wrk output:\n{text[-2000:]}")
    done = _DONE.search(text)
    socket_errors = _SOCKET.search(text)
    errors = sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    non_2xx = _NON_2XX.search(text)
    if non_2xx is not None:
        errors += int(non_2xx.group(1))
    return WrkResult(
        requests_per_second=float(rps.group(1)),
        transfer_bytes_per_second=float(transfer.group(1)) * _UNITS[transfer.group(2) or ""],
        requests=int(done.group(1)) if done else 0,
        errors=errors,
    )


def wrk_path() -> str | None:
    """Where wrk is, or ``None`` when it is not installed."""
    return shutil.which("wrk")


def wrk_version() -> str:
    """wrk's version line, or ``"not installed"``."""
    path = wrk_path()
    if path is None:
        return "not installed"
    done = subprocess.run([path, "-v"], capture_output=True, text=True, check=False, timeout=10)
    first = (done.stdout or done.stderr).strip().splitlines()
    return first[0] if first else "unknown"


def _lua_script(workload: Workload) -> str:
    unit = workload.request_unit
    # A Lua string literal of the unit: printable ASCII, and "\n" for newlines.
    literal = unit.decode("ascii").replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return (
        f'wrk.method = "{workload.method}"\n'
        f'wrk.body = string.rep("{literal}", {workload.request_bytes // len(unit)})\n'
        'wrk.headers["Content-Type"] = "application/octet-stream"\n'
    )


def run_wrk(
    url: str,
    workload: Workload,
    *,
    duration: int,
    connections: int,
    threads: int = 2,
    timeout: int = 10,
) -> WrkResult:
    """Load ``url`` with wrk for ``duration`` seconds and return its summary.

    :param url: the full URL, path included.
    :param workload: decides the method and the uploaded body.
    :param duration: whole seconds (wrk has no sub-second durations).
    :param connections: open connections (``-c``).
    :param threads: wrk threads (``-t``); never more than ``connections``.
    :param timeout: wrk's per-request timeout, seconds.
    :raises WrkError: if wrk is missing, fails, or prints no summary.
    """
    path = wrk_path()
    if path is None:
        raise WrkError("wrk is not installed")
    argv = [
        path,
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(1, duration)}s",
        f"--timeout={timeout}s",
    ]
    with tempfile.TemporaryDirectory(prefix="bridge-wrk-") as tmp:
        if workload.request_bytes:
            script = Path(tmp) / "upload.lua"
            script.write_text(_lua_script(workload), encoding="utf-8")
            argv += ["-s", str(script)]
        argv.append(url)
        done = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=duration + timeout + 30
        )
    if done.returncode != 0:
        raise WrkError(f"wrk exited with {done.returncode}: {done.stderr.strip()[-2000:]}")
    return parse_wrk_output(done.stdout)
