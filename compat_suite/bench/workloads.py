"""What one benchmark request is: its path, its method, and the bytes it moves.

The paths are those of :mod:`compat_suite.bench_apps`; the sizes come from
there too, so the apps and the drivers cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from compat_suite import bench_apps

__all__ = [
    "ASGI_IN_WSGI",
    "DIRECTIONS",
    "WORKLOADS",
    "WSGI_IN_ASGI",
    "Direction",
    "Workload",
    "workload",
]

Direction = Literal["wsgi-in-asgi", "asgi-in-wsgi"]
#: A WSGI app served by an ASGI server (or driven as an ASGI callable in process).
WSGI_IN_ASGI: Direction = "wsgi-in-asgi"
#: An ASGI app served by a WSGI server (or driven as a WSGI callable in process).
ASGI_IN_WSGI: Direction = "asgi-in-wsgi"
DIRECTIONS: tuple[Direction, ...] = (WSGI_IN_ASGI, ASGI_IN_WSGI)


@dataclass(frozen=True)
class Workload:
    """One kind of request.

    :param name: the name used by ``--only`` and in the tables.
    :param path: the app's route.
    :param description: one line for the README table's legend.
    :param request_bytes: body size the client uploads (0 for ``GET``).
    :param request_chunk: size of the body pieces the client hands over in process.
    :param response_bytes: body size the app answers with.
    :param directions: where the workload exists (Flask is a WSGI app only).
    :param request_unit: what the uploaded body repeats; its length divides
        ``request_chunk``, which divides ``request_bytes``.
    """

    name: str
    path: str
    description: str
    request_bytes: int = 0
    request_chunk: int = 64 * bench_apps.KIB
    response_bytes: int = len(bench_apps.HELLO)
    directions: tuple[Direction, ...] = DIRECTIONS
    request_unit: bytes = b"u"

    def request_body(self, size: int) -> bytes:
        """``size`` bytes of the uploaded body: :attr:`request_unit` repeated."""
        return self.request_unit * (size // len(self.request_unit))

    @property
    def method(self) -> str:
        """``POST`` when there is a body to upload, ``GET`` otherwise."""
        return "POST" if self.request_bytes else "GET"

    @property
    def payload_bytes(self) -> int:
        """The bytes one request moves in its main direction (for MiB/s)."""
        return max(self.request_bytes, self.response_bytes)

    @property
    def reports_throughput(self) -> bool:
        """Whether MiB/s means something here (bulk workloads only)."""
        return self.payload_bytes >= bench_apps.MIB


WORKLOADS: tuple[Workload, ...] = (
    Workload("hello", "/hello", "13-byte `Hello, world!`, raw app"),
    Workload(
        "flask", "/flask", "13-byte `Hello, world!` from a Flask route", directions=(WSGI_IN_ASGI,)
    ),
    Workload(
        "download-1m",
        "/download",
        "1 MiB response in 64 KiB chunks (Content-Length)",
        response_bytes=bench_apps.DOWNLOAD_BYTES,
    ),
    Workload(
        "upload-1m",
        "/upload",
        "1 MiB POST body, read in 64 KiB reads",
        request_bytes=bench_apps.MIB,
        request_chunk=bench_apps.UPLOAD_CHUNK,
        response_bytes=7,
    ),
    Workload(
        "stream-down-4k",
        "/stream-down",
        "1 MiB response in 4 KiB chunks (chunked encoding)",
        response_bytes=bench_apps.STREAM_BYTES,
    ),
    Workload(
        "stream-up-4k",
        "/stream-up",
        "1 MiB POST body, sent and read in 4 KiB pieces",
        request_bytes=bench_apps.STREAM_BYTES,
        request_chunk=bench_apps.STREAM_CHUNK,
        response_bytes=7,
    ),
    Workload(
        "upload-lines",
        "/lines",
        "1 MiB POST body of 64-byte lines, iterated line by line (WSGI app only)",
        request_bytes=bench_apps.LINES_BYTES,
        request_chunk=bench_apps.LINES_CHUNK,
        request_unit=bench_apps.LINE,
        response_bytes=7,
        directions=(WSGI_IN_ASGI,),
    ),
)


def workload(name: str) -> Workload:
    """The workload called ``name``.

    :param name: a workload name.
    :raises KeyError: for an unknown name.
    """
    for candidate in WORKLOADS:
        if candidate.name == name:
            return candidate
    raise KeyError(name)
