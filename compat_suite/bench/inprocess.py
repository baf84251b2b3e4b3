"""In-process drivers: call the adapters' callables directly, no sockets.

Rules:

1. An ASGI callable (a WSGI app behind a WSGI-in-ASGI adapter, or the native
   ASGI app) is driven on one event loop (asyncio's unless told otherwise),
   kept for the whole run, with the smallest ``receive``/``send`` pair that
   honours the spec: a fresh scope, the request body in ``request_chunk``
   pieces, then ``http.disconnect`` only once the response is complete (ASGI
   www §Disconnect).
2. A WSGI callable (an ASGI app behind an ASGI-in-WSGI adapter, or the native
   WSGI app) is called with a fresh environ and a ``start_response`` from one
   thread, or from N threads at once; its iterable is drained and closed
   (PEP 3333 §Specification Details).
3. Every request is checked (status 200, body length); the first one of a
   cell also checks the body's bytes. A wrong answer is an error, not a number.
4. A timed cell that overruns its duration by ``_GRACE`` seconds fails with
   ``TimeoutError`` (its threads are daemons and are left behind); a counted
   cell has no deadline, whoever runs it bounds it.
5. A cell runs for a fixed wall-clock duration (:meth:`InProcessBench.measure`)
   or a fixed number of requests per worker (:meth:`InProcessBench.repeat`).
   Its result is requests done and seconds taken, so "µs/request" at
   concurrency N is wall time over requests (the inverse of throughput), not
   latency.
6. The first, checked request of a cell is not counted in its result.
"""

from __future__ import annotations

import asyncio
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.types import ASGIApp, Environ, ExcInfo, Message, Write, WSGIApp
from compat_suite import bench_apps
from compat_suite.bench.workloads import WSGI_IN_ASGI, Direction, Workload

__all__ = ["BadResponse", "InProcessBench", "Sample", "drives_wsgi"]

#: Seconds a cell may overrun its duration before it counts as hung (then: failed).
_GRACE = 30.0


class BadResponse(AssertionError):
    """An adapter answered a benchmark request wrongly."""


@dataclass(frozen=True)
class Sample:
    """What one cell measured: ``requests`` completed in ``seconds`` of wall time."""

    requests: int
    seconds: float

    @property
    def requests_per_second(self) -> float:
        """Throughput."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0


class _Budget(Protocol):
    """When a cell's workers stop: after a duration, or after a number of requests."""

    #: Seconds from :meth:`start` after which the cell counts as hung; ``None``: never.
    timeout: float | None

    def start(self) -> None:
        """The workers are released now."""

    def more(self, done: int) -> bool:
        """Whether a worker that has completed ``done`` requests issues another."""


class _Deadline:
    """Every worker keeps issuing requests for ``seconds`` after the start."""

    def __init__(self, seconds: float) -> None:
        self.timeout: float | None = seconds + _GRACE
        self._seconds = seconds
        self._end = math.inf

    def start(self) -> None:
        self._end = time.perf_counter() + self._seconds

    def more(self, done: int) -> bool:
        return time.perf_counter() < self._end


class _Quota:
    """Every worker issues exactly ``each`` requests."""

    timeout: float | None = None

    def __init__(self, each: int) -> None:
        self._each = each

    def start(self) -> None:
        pass

    def more(self, done: int) -> bool:
        return done < self._each


def _expected_body(workload: Workload) -> bytes:
    if workload.request_bytes:
        return str(workload.request_bytes).encode()
    if workload.response_bytes == len(bench_apps.HELLO):
        return bench_apps.HELLO
    return b""  # bulk downloads: the length check is enough


def _check(workload: Workload, status: int, length: int, body: bytes | None) -> None:
    if status != 200 or length != workload.response_bytes:
        raise BadResponse(
            f"{workload.name}: expected 200 with {workload.response_bytes} bytes, "
            f"got {status} with {length} bytes"
        )
    expected = _expected_body(workload)
    if body is not None and expected and body != expected:
        raise BadResponse(f"{workload.name}: expected body {expected!r}, got {body[:80]!r}")


# --------------------------------------------------------------------------- ASGI side


def _scope(workload: Workload) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bridge-bench")]
    if workload.request_bytes:
        headers += [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", b"%d" % workload.request_bytes),
        ]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": workload.method,
        "scheme": "http",
        "path": workload.path,
        "raw_path": workload.path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _asgi_request(
    app: ASGIApp,
    workload: Workload,
    template: dict[str, Any],
    piece: bytes,
    *,
    collect: bool = False,
) -> None:
    scope = dict(template)  # the request's own, as a server makes one per request
    pieces = workload.request_bytes // workload.request_chunk
    body_sent = False
    complete = False
    done: asyncio.Event | None = None  # made only if the app waits for a disconnect
    status = 0
    length = 0
    parts: list[bytes] = []

    async def receive() -> Message:
        nonlocal pieces, body_sent, done
        if pieces > 0:
            pieces -= 1
            body_sent = pieces == 0
            return {"type": "http.request", "body": piece, "more_body": not body_sent}
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        if not complete:
            if done is None:
                done = asyncio.Event()
            await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status, length, complete
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            length += len(body)
            if collect:
                parts.append(body)
            if not message.get("more_body", False):
                complete = True
                if done is not None:
                    done.set()

    await app(scope, receive, send)
    _check(workload, status, length, b"".join(parts) if collect else None)


async def _asgi_cell(app: ASGIApp, workload: Workload, concurrency: int, budget: _Budget) -> Sample:
    # What does not change is made once per cell, like the WSGI side's upload, so
    # the driver's own cost stays small next to the adapter's. Made per request,
    # the 64 KiB body piece alone cost 65k instructions under callgrind (memset's
    # ``rep stosb`` counts once per byte), and the scope 6k.
    scope = _scope(workload)
    piece = workload.request_body(workload.request_chunk) if workload.request_bytes else b""
    await asyncio.wait_for(_asgi_request(app, workload, scope, piece, collect=True), _GRACE)
    counts = [0] * concurrency

    async def worker(index: int) -> None:
        while budget.more(counts[index]):
            await _asgi_request(app, workload, scope, piece)
            counts[index] += 1

    budget.start()
    start = time.perf_counter()
    workers = asyncio.gather(*(worker(i) for i in range(concurrency)))
    await asyncio.wait_for(workers, budget.timeout)
    return Sample(sum(counts), time.perf_counter() - start)


# --------------------------------------------------------------------------- WSGI side


class _ChunkedInput:
    """``wsgi.input`` that hands out at most ``chunk`` bytes per read, like a socket."""

    def __init__(self, body: bytes, chunk: int) -> None:
        self._body = body
        self._chunk = chunk
        self._pos = 0

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._body)
        if size is not None and size >= 0:
            end = min(end, self._pos + min(size, self._chunk))
        data = self._body[self._pos : end]
        self._pos = end if data else self._pos
        return data

    def readline(self, size: int | None = -1) -> bytes:
        newline = self._body.find(b"\n", self._pos)
        end = len(self._body) if newline < 0 else newline + 1
        if size is not None and size >= 0:
            end = min(end, self._pos + size)
        data = self._body[self._pos : end]
        self._pos = end
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> _ChunkedInput:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


def _environ(workload: Workload) -> Environ:
    environ: Environ = {
        "REQUEST_METHOD": workload.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": workload.path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "bridge-bench",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    if workload.request_bytes:
        environ["CONTENT_TYPE"] = "application/octet-stream"
        environ["CONTENT_LENGTH"] = str(workload.request_bytes)
    return environ


def _wsgi_request(
    app: WSGIApp, workload: Workload, upload: bytes, *, collect: bool = False
) -> None:
    environ = _environ(workload)
    environ["wsgi.input"] = _ChunkedInput(upload, workload.request_chunk)
    status = ""
    length = 0
    parts: list[bytes] = []

    def write(data: bytes) -> None:
        nonlocal length
        length += len(data)
        if collect:
            parts.append(data)

    def start_response(
        status_line: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None, /
    ) -> Write:
        nonlocal status
        status = status_line
        return write

    iterable = app(environ, start_response)
    try:
        for data in iterable:
            write(data)
    finally:
        close: Callable[[], object] | None = getattr(iterable, "close", None)
        if close is not None:
            close()
    code = int(status.split(" ", 1)[0]) if status else 0
    _check(workload, code, length, b"".join(parts) if collect else None)


def _wsgi_cell(app: WSGIApp, workload: Workload, concurrency: int, budget: _Budget) -> Sample:
    upload = workload.request_body(workload.request_bytes)
    counts = [0] * concurrency
    errors: list[BaseException] = []
    checked = threading.Event()
    ready = threading.Barrier(concurrency + 1)

    def check() -> None:
        try:
            _wsgi_request(app, workload, upload, collect=True)
        except BaseException as exc:  # re-raised by the caller below
            errors.append(exc)
        checked.set()

    def worker(index: int) -> None:
        ready.wait()
        try:
            while budget.more(counts[index]):
                _wsgi_request(app, workload, upload)
                counts[index] += 1
        except BaseException as exc:  # re-raised by the caller below
            errors.append(exc)

    # Even the sequential case runs in a (daemon) thread, so that a hung adapter
    # costs a timeout, not the whole run.
    threading.Thread(target=check, daemon=True).start()
    if not checked.wait(_GRACE):
        raise TimeoutError(f"{workload.name}: no answer within {_GRACE:g} s")
    if errors:
        raise errors[0]
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    budget.start()
    start = time.perf_counter()
    ready.wait()
    # A counted cell has no timeout: join() then waits as long as it takes.
    end = None if budget.timeout is None else start + budget.timeout
    for thread in threads:
        thread.join(None if end is None else max(0.0, end - time.perf_counter()))
    elapsed = time.perf_counter() - start
    if any(thread.is_alive() for thread in threads):
        raise TimeoutError(f"{workload.name}: requests still running {_GRACE:g} s after the end")
    if errors:
        raise errors[0]
    return Sample(sum(counts), elapsed)


# --------------------------------------------------------------------------- the bench


def drives_wsgi(direction: Direction, adapter: str, workload: Workload) -> bool:
    """Whether a cell calls a WSGI app from threads, rather than an ASGI app on the loop.

    ASGI-in-WSGI adapters are WSGI apps; so is the native row of Flask, which has
    no ASGI form: its ceiling is the WSGI call itself.

    :param direction: which side of the bridge the adapter sits on.
    :param adapter: an adapter name of that direction.
    :param workload: the request.
    """
    return direction != WSGI_IN_ASGI or (adapter == "native" and workload.name == "flask")


class InProcessBench:
    """Builds each adapter once and measures cells on one event loop or in threads.

    Use as a context manager: leaving it closes the loop and the adapters.

    :param loop_factory: makes the loop that drives ASGI callables (asyncio's by default).
    """

    def __init__(
        self, loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    ) -> None:
        self._loop = loop_factory()
        self._asgi: dict[str, ASGIApp] = {}
        self._wsgi: dict[str, WSGIApp] = {}

    def __enter__(self) -> InProcessBench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every adapter built and the loop."""
        for app in self._wsgi.values():
            bench_apps.close_app(app)
        self._wsgi.clear()
        self._loop.close()

    def measure(
        self,
        direction: Direction,
        adapter: str,
        workload: Workload,
        concurrency: int,
        duration: float,
    ) -> Sample:
        """Run one cell for ``duration`` seconds.

        :param direction: which side of the bridge the adapter sits on.
        :param adapter: an adapter name of that direction (``bench_apps``'s tables).
        :param workload: the request to repeat.
        :param concurrency: 1 for sequential; N requests in flight otherwise.
        :param duration: seconds of wall time to keep issuing requests.
        :raises bench_apps.AdapterUnavailable: if the adapter cannot be built.
        :raises BadResponse: if the adapter answers wrongly.
        :raises TimeoutError: if the cell overruns ``duration`` by 30 s.
        """
        return self._run(direction, adapter, workload, concurrency, _Deadline(duration))

    def repeat(
        self,
        direction: Direction,
        adapter: str,
        workload: Workload,
        concurrency: int,
        each: int,
    ) -> Sample:
        """Run one cell for ``concurrency * each`` requests (after one checked request).

        There is no deadline: the caller bounds the run if it needs to.

        :param direction: which side of the bridge the adapter sits on.
        :param adapter: an adapter name of that direction (``bench_apps``'s tables).
        :param workload: the request to repeat.
        :param concurrency: requests in flight: tasks on the loop, or threads.
        :param each: requests per task or thread.
        :raises bench_apps.AdapterUnavailable: if the adapter cannot be built.
        :raises BadResponse: if the adapter answers wrongly.
        """
        return self._run(direction, adapter, workload, concurrency, _Quota(each))

    def _run(
        self,
        direction: Direction,
        adapter: str,
        workload: Workload,
        concurrency: int,
        budget: _Budget,
    ) -> Sample:
        if direction == WSGI_IN_ASGI and drives_wsgi(direction, adapter, workload):
            # Flask's native row: the WSGI app itself, no adapter (see drives_wsgi).
            return _wsgi_cell(bench_apps.wsgi_app, workload, concurrency, budget)
        if direction == WSGI_IN_ASGI:
            if adapter not in self._asgi:
                self._asgi[adapter] = bench_apps.wsgi_in_asgi(adapter)
            coroutine = _asgi_cell(self._asgi[adapter], workload, concurrency, budget)
            return self._loop.run_until_complete(coroutine)
        if adapter not in self._wsgi:
            self._wsgi[adapter] = bench_apps.asgi_in_wsgi(adapter)
        return _wsgi_cell(self._wsgi[adapter], workload, concurrency, budget)
