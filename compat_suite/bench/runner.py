"""Run the planned cells in interleaved rounds and collect one number per cell per round.

Rules:

1. Interleave: every round visits every cell once, adapters of one
   (setting, workload) back to back, so machine noise lands on all of them.
   The adapter order rotates from round to round, so no adapter always runs
   first (cold) or last (after the others warmed the CPU).
2. End to end, each round starts one server per (server, adapter), all of them
   at once, runs every workload against them, then stops them: startup costs
   are paid once per round and idle servers sleep.
3. A cell that cannot run (adapter not written yet, server or wrk missing) is
   "unavailable" and is never tried again. One that runs but answers wrongly,
   hangs or crashes fails *that round*: the failure and its reason are kept,
   and the cell is tried again in the next round (end to end on a fresh
   server), so one bad round does not throw away the rounds that worked.
   A cell that failed every round is "failed". Nothing stops the run.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import os
import statistics
import sys
import tempfile
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

from compat_suite import bench_apps, servers
from compat_suite.bench.cpu import tree_cpu_seconds
from compat_suite.bench.inprocess import BadResponse, InProcessBench
from compat_suite.bench.plan import E2E, IN_PROCESS, Cell
from compat_suite.bench.workloads import WSGI_IN_ASGI, Workload
from compat_suite.bench.wrk import WrkError, run_wrk, wrk_path

__all__ = ["CellResult", "RunOptions", "run_cells"]

# How much of a failed server's log is kept (the end of it).
_KEPT_LOG_LIMIT = 200_000


@dataclass(frozen=True)
class RunOptions:
    """How long and how hard to measure.

    :param rounds: interleaved repetitions; the report shows medians over them.
    :param duration: seconds per end-to-end cell (wrk ``-d``, whole seconds).
    :param inproc_duration: seconds per in-process cell.
    :param connections: wrk ``-c`` and the in-process concurrency.
    :param wrk_threads: wrk ``-t``.
    """

    rounds: int = 3
    duration: int = 5
    inproc_duration: float = 1.0
    connections: int = 32
    wrk_threads: int = 2


@dataclass
class CellResult:
    """What a cell produced over the rounds.

    :param cell: the cell.
    :param rps: requests per second, one entry per round that completed, in
        round order.
    :param failures: the rounds that did not complete: round index (from 0)
        to why (rule 3).
    :param unavailable: why the cell could never run, or ``""``.
    :param errors: wrk socket errors and non-2xx responses, summed over rounds.
    :param argv: the server command line (end to end only).
    :param cpu_us: end to end, the server's CPU microseconds per request, one
        entry per round where ``/proc`` could be read (:mod:`compat_suite.bench.cpu`).
    """

    cell: Cell
    rps: list[float] = field(default_factory=list)
    failures: dict[int, str] = field(default_factory=dict)
    unavailable: str = ""
    errors: int = 0
    argv: list[str] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``"unavailable"``, ``"failed"`` (no round completed) or ``"ok"``."""
        if self.unavailable:
            return "unavailable"
        return "failed" if self.failures and not self.rps else "ok"

    @property
    def reason(self) -> str:
        """Why the cell could not run, or why its first failed round failed; else ``""``."""
        if self.unavailable:
            return self.unavailable
        return self.failures[min(self.failures)] if self.failures else ""

    @property
    def ok(self) -> bool:
        """Whether the cell has numbers to show (from at least one round)."""
        return not self.unavailable and bool(self.rps)

    @property
    def rounds(self) -> int:
        """Rounds the cell took part in: completed and failed."""
        return len(self.rps) + len(self.failures)

    def by_round(self) -> dict[int, float]:
        """Requests per second of each completed round, by round index.

        Every round the cell took part in either completed or failed, so the
        completed ones are the indexes :attr:`failures` leaves out, in order.
        """
        completed = (index for index in itertools.count() if index not in self.failures)
        return dict(zip(completed, self.rps, strict=False))

    @property
    def median_rps(self) -> float:
        """Median requests per second over rounds (0 when none ran)."""
        return statistics.median(self.rps) if self.rps else 0.0

    @property
    def median_cpu_us(self) -> float | None:
        """Median server CPU microseconds per request over rounds; ``None`` if never read."""
        return statistics.median(self.cpu_us) if self.cpu_us else None

    @property
    def spread(self) -> float:
        """(max - min) / median over rounds, as a fraction."""
        if len(self.rps) < 2 or self.median_rps <= 0:
            return 0.0
        return (max(self.rps) - min(self.rps)) / self.median_rps

    def mark_unavailable(self, reason: str) -> None:
        """Record that the cell cannot run at all; the first reason wins."""
        if not self.unavailable:
            self.unavailable = _one_line(reason)

    def fail(self, round_index: int, reason: str) -> None:
        """Record that round ``round_index`` did not complete, and why (rule 3)."""
        self.failures.setdefault(round_index, _one_line(reason))


def _one_line(text: str, limit: int = 240) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else text.strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _rotated(items: list[Cell], by: int) -> list[Cell]:
    if not items:
        return items
    by %= len(items)
    return items[by:] + items[:by]


Progress = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- in process


def _in_process_round(
    bench: InProcessBench,
    cells: list[Cell],
    results: dict[tuple[str, ...], CellResult],
    options: RunOptions,
    round_index: int,
    progress: Progress,
) -> None:
    groups: dict[tuple[str, str, str], list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.direction, cell.workload.name, cell.setting), []).append(cell)
    for group in groups.values():
        for cell in _rotated(group, round_index):
            result = results[cell.key]
            if result.unavailable:
                continue
            concurrency = 1 if cell.setting == "sequential" else options.connections
            try:
                sample = bench.measure(
                    cell.direction, cell.adapter, cell.workload, concurrency,
                    options.inproc_duration,
                )  # fmt: skip
            except bench_apps.AdapterUnavailable as exc:
                result.mark_unavailable(str(exc))
                continue
            except (
                Exception
            ) as exc:  # a broken adapter (BadResponse or a crash) must not stop the run
                result.fail(round_index, f"{type(exc).__name__}: {exc}")
                progress(_progress_line(round_index, cell, result))
                continue
            result.rps.append(sample.requests_per_second)
            progress(_progress_line(round_index, cell, result))


def _progress_line(round_index: int, cell: Cell, result: CellResult) -> str:
    failed = result.failures.get(round_index)
    outcome = f"failed: {failed}" if failed is not None else f"{result.rps[-1]:,.0f} req/s"
    return (
        f"[round {round_index + 1}] {cell.scope} {cell.direction} {cell.setting} "
        f"{cell.workload.name} {cell.adapter}: {outcome}"
    )


# --------------------------------------------------------------------------- end to end


def _served(cell: Cell) -> tuple[str, str]:
    """The server to start and the ``module:attr`` it serves."""
    if cell.direction == WSGI_IN_ASGI and cell.setting in ("uvicorn", "granian-asgi"):
        return cell.setting, "compat_suite.bench_apps:asgi_served"
    return cell.setting, "compat_suite.bench_apps:wsgi_served"


def _extra_args(server: str) -> list[str]:
    # uvicorn logs every request by default; nobody benchmarks that.
    return ["--no-access-log", "--log-level", "warning"] if server == "uvicorn" else []


def _availability(cell: Cell) -> str | None:
    """Why an end-to-end cell cannot run here, or ``None``."""
    if wrk_path() is None:
        return "wrk is not installed"
    server, _ = _served(cell)
    if not servers.SERVERS[server].available:
        return f"{server} is not installed"
    try:
        if cell.setting == "gunicorn-sync" or cell.direction != WSGI_IN_ASGI:
            bench_apps.close_app(bench_apps.asgi_in_wsgi(cell.adapter))
        else:
            bench_apps.wsgi_in_asgi(cell.adapter)
    except bench_apps.AdapterUnavailable as exc:
        return str(exc)
    return None


def _check_once(base_url: str, workload: Workload) -> None:
    """One request over HTTP: the server must answer 200 with the expected length."""
    url = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    try:
        body = workload.request_body(workload.request_bytes) if workload.request_bytes else None
        connection.request(workload.method, workload.path, body=body)
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    if response.status != 200 or len(data) != workload.response_bytes:
        raise BadResponse(
            f"{workload.name}: expected 200 with {workload.response_bytes} bytes over HTTP, "
            f"got {response.status} with {len(data)} bytes"
        )


def _e2e_round(
    cells: list[Cell],
    results: dict[tuple[str, ...], CellResult],
    options: RunOptions,
    round_index: int,
    progress: Progress,
) -> None:
    by_server: dict[str, list[Cell]] = {}
    for cell in cells:
        if not results[cell.key].unavailable:
            by_server.setdefault(cell.setting, []).append(cell)
    for server_cells in by_server.values():
        adapters = list(dict.fromkeys(cell.adapter for cell in server_cells))
        running: dict[str, servers.RunningServer] = {}
        with contextlib.ExitStack() as stack:
            for adapter in adapters:
                adapter_cells = [c for c in server_cells if c.adapter == adapter]
                name, target = _served(adapter_cells[0])
                try:
                    running[adapter] = stack.enter_context(
                        servers.serve(
                            name,
                            target,
                            env={bench_apps.ADAPTER_ENV: adapter},
                            workers=1,
                            extra_args=_extra_args(name),
                        )
                    )
                except servers.ServerStartError as exc:
                    for cell in adapter_cells:
                        results[cell.key].fail(round_index, f"server did not start: {exc}")
                        progress(_progress_line(round_index, cell, results[cell.key]))
            groups: dict[str, list[Cell]] = {}
            for cell in server_cells:
                if cell.adapter in running:
                    groups.setdefault(cell.workload.name, []).append(cell)
            for group in groups.values():
                for cell in _rotated(group, round_index):
                    result = results[cell.key]
                    _e2e_cell(cell, running[cell.adapter], result, options, round_index)
                    progress(_progress_line(round_index, cell, result))


def _e2e_cell(
    cell: Cell,
    server: servers.RunningServer,
    result: CellResult,
    options: RunOptions,
    round_index: int,
) -> None:
    result.argv = server.argv
    try:
        _check_once(server.base_url, cell.workload)
        cpu_before = tree_cpu_seconds(server.pid)
        measured = run_wrk(
            server.base_url + cell.workload.path,
            cell.workload,
            duration=options.duration,
            connections=options.connections,
            threads=options.wrk_threads,
        )
    except (BadResponse, WrkError, OSError, http.client.HTTPException) as exc:
        log = _kept_log(cell, server)
        result.fail(round_index, f"{type(exc).__name__}: {_one_line(str(exc))} ({log})")
        return
    cpu_after = tree_cpu_seconds(server.pid)
    result.errors += measured.errors
    if measured.requests_per_second <= 0:
        log = _kept_log(cell, server)
        result.fail(round_index, f"wrk completed no request in {options.duration} s ({log})")
        return
    result.rps.append(measured.requests_per_second)
    if cpu_before is not None and cpu_after is not None and measured.requests > 0:
        result.cpu_us.append((cpu_after - cpu_before) / measured.requests * 1e6)


def _kept_log(cell: Cell, server: servers.RunningServer) -> str:
    """The server log's last line, and a copy of the whole log that outlives the server.

    A server that died (a worker crash makes granian stop) deletes its log when
    it is stopped; its last line alone rarely says why.
    """
    text = server.log_text(_KEPT_LOG_LIMIT)
    name = "-".join((cell.direction, cell.setting, cell.workload.name, cell.adapter))
    fd, path = tempfile.mkstemp(prefix=f"bridge-bench-{name}-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as copy:
        copy.write(text)
    # The path first: a long reason is cut at its end.
    return f"whole log: {path}; server log: {_one_line(text[-2000:])}"


# --------------------------------------------------------------------------- both


def run_cells(
    cells: list[Cell], options: RunOptions, progress: Progress = _stderr
) -> list[CellResult]:
    """Measure ``cells`` over ``options.rounds`` interleaved rounds.

    :param cells: from :func:`compat_suite.bench.plan.plan_cells`.
    :param options: durations, rounds, connections.
    :param progress: called with one line per measurement (stderr by default).
    :returns: one result per cell, in the order of ``cells``.
    """
    results: dict[tuple[str, ...], CellResult] = {cell.key: CellResult(cell) for cell in cells}
    in_process = [c for c in cells if c.scope == IN_PROCESS]
    end_to_end = [c for c in cells if c.scope == E2E]
    for cell in end_to_end:
        reason = _availability(cell)
        if reason is not None:
            results[cell.key].mark_unavailable(reason)
    with InProcessBench() as bench:
        for round_index in range(options.rounds):
            _in_process_round(bench, in_process, results, options, round_index, progress)
            _e2e_round(end_to_end, results, options, round_index, progress)
    return [results[cell.key] for cell in cells]
