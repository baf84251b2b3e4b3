"""Memory stays bounded while 1 GiB streams through each adapter direction.

The server's worker process (found through the app's ``/pid`` route) may not
grow its peak resident set by more than 64 MiB while a 1 GiB response is read
by a client that consumes it in small pieces, or while a 1 GiB request body is
uploaded. The peak is the kernel's ``VmHWM``, reset after a warm-up through
``/proc/<pid>/clear_refs`` (value 5, Linux >= 4.0); where that reset is not
allowed, a sampler thread records the highest ``VmRSS`` instead.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from types import TracebackType

import pytest

from compat_suite.deployments import Deployment, Live
from tests.e2e.harness import GiB, MiB, e2e_adapters, upload


def _with_greenlet(adapters: list[str]) -> list[str]:
    # bridge's greenlet executor keeps no queue: each chunk waits for send().
    # Its bound comes from the server's backpressure alone, so check it too.
    return [*adapters, "bridge-greenlet"] if "bridge" in adapters else adapters


pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/<pid>/status"),
    pytest.mark.parametrize(
        "live",
        [
            *(
                pytest.param(Deployment(server, "flask", adapter), id=f"{server}-flask-{adapter}")
                for server in ("uvicorn", "granian-asgi")
                for adapter in _with_greenlet(e2e_adapters("wsgi-in-asgi"))
            ),
            *(
                pytest.param(
                    Deployment(server, "fastapi", adapter), id=f"{server}-fastapi-{adapter}"
                )
                for server in ("gunicorn-gthread", "granian-wsgi")
                for adapter in e2e_adapters("asgi-in-wsgi")
            ),
        ],
        indirect=True,
        scope="module",
    ),
]

LIMIT = 64 * MiB
CLIENT_PIECE = 16 * 1024


def _status_bytes(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == field:
            number, unit = value.split()
            assert unit == "kB", line
            return int(number) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


class PeakRss:
    """The growth of a process's peak resident set over a ``with`` block."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline = 0
        self.peak = 0
        self._exact = False
        self._done = threading.Event()
        self._sampler: threading.Thread | None = None

    def __enter__(self) -> PeakRss:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self._exact = True
        except OSError:
            self._sampler = threading.Thread(target=self._sample, daemon=True)
        self.baseline = _status_bytes(self.pid, "VmRSS")
        self.peak = self.baseline
        if self._sampler is not None:
            self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._done.wait(0.01):
            self.peak = max(self.peak, _status_bytes(self.pid, "VmRSS"))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        if self._sampler is not None:
            self._sampler.join()
        if self._exact:
            self.peak = _status_bytes(self.pid, "VmHWM")
        self.peak = max(self.peak, _status_bytes(self.pid, "VmRSS"))

    @property
    def growth(self) -> int:
        """Peak minus the resident set at the start of the block, in bytes."""
        return self.peak - self.baseline

    def describe(self) -> str:
        """A one-line account for assertion messages."""
        how = "VmHWM after clear_refs" if self._exact else "sampled VmRSS"
        return (
            f"pid {self.pid}: baseline {self.baseline / MiB:.1f} MiB, peak "
            f"{self.peak / MiB:.1f} MiB ({how}), growth {self.growth / MiB:.1f} MiB"
        )


def _worker_pid(live: Live) -> int:
    response = live.client.get("/pid")
    response.raise_for_status()
    pid = response.json()["pid"]
    assert isinstance(pid, int)
    assert Path(f"/proc/{pid}").exists(), f"/pid answered {pid}, which is not a local process"
    return pid


def _download(live: Live, size: int) -> int:
    received = 0
    with live.client.stream("GET", f"/download/{size}") as response:
        assert response.status_code == 200
        # A client slower than the server: it takes the body in small pieces.
        for piece in response.iter_raw(CLIENT_PIECE):
            received += len(piece)
    return received


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_download_1_gib_in_bounded_memory(live: Live) -> None:
    pid = _worker_pid(live)
    assert _download(live, 32 * MiB) == 32 * MiB  # warm-up: threads, pools, buffers
    with PeakRss(pid) as peak:
        received = _download(live, GiB)
    print(peak.describe())  # shown by -rA / -s
    assert received == GiB
    assert peak.growth < LIMIT, peak.describe()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_upload_1_gib_in_bounded_memory(live: Live) -> None:
    pid = _worker_pid(live)
    upload(live.client, 32 * MiB)  # warm-up
    with PeakRss(pid) as peak:
        upload(live.client, GiB)
    print(peak.describe())  # shown by -rA / -s
    assert peak.growth < LIMIT, peak.describe()
