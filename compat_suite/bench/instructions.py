"""Marginal CPU instructions per request, counted by callgrind: the deterministic cost.

Wall-clock figures on a shared machine move by ±20 % from run to run; the
number of instructions a request executes, as callgrind counts it, moves by
about 0.3 %. It is the number that says whether a change made the
per-request path cheaper.

Rules:

1. A cell is (direction, adapter, workload), run in process by a child
   process (:func:`drive`, ``python -m compat_suite.bench.instructions --child``)
   through :class:`~compat_suite.bench.inprocess.InProcessBench`: an ASGI
   callable by :data:`TASKS` tasks on one uvloop loop, a WSGI callable by
   :data:`THREADS` threads (draining the iterable, calling ``close()``).
2. The child runs twice under ``valgrind --tool=callgrind
   --callgrind-out-file=/dev/null``, with a small and a large number of
   requests; callgrind's ``Collected :`` line on stderr is each run's total.
   The cost of a request is the difference of the totals over the difference
   of the counts: start-up, imports, building the adapter and the checked
   first request are in both runs and cancel.
3. A request count is a multiple of :data:`TASKS` (hence of :data:`THREADS`),
   so every task or thread does the same share and the requests run are the
   requests counted.
4. The child's ``PYTHONHASHSEED`` is fixed: with random string hashes, dict
   probe sequences, and so the totals, can differ from run to run. Its
   ``faulthandler`` is on, so a crash names where it happened.
5. The count is the adapter's work plus the driver's (a fresh scope or
   environ, the answer checked): the native row shows that floor. Compare
   rows and commits counted by this module, not figures from another driver.
6. A run that does not give a total (valgrind missing, adapter unavailable,
   wrong answer, crash) raises :class:`InstructionCountError` with one line
   that says why, and the path of a file that keeps the run's whole stderr;
   nothing is retried.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from compat_suite.bench.inprocess import InProcessBench, Sample, drives_wsgi
from compat_suite.bench.plan import IN_PROCESS, Cell, Selection, plan_cells
from compat_suite.bench.report import markdown_table
from compat_suite.bench.workloads import DIRECTIONS, Direction, Workload, workload

__all__ = [
    "TASKS",
    "THREADS",
    "InstructionCountError",
    "Total",
    "check_counts",
    "count_instructions",
    "counted_cells",
    "drive",
    "instructions_per_request",
    "main",
    "measure_cell",
    "parse_collected",
    "render_table",
    "valgrind_path",
]

#: Requests in flight on an ASGI callable: tasks on one loop.
TASKS = 32
#: Threads calling a WSGI callable, as many as gunicorn-gthread's in the end-to-end runs.
THREADS = 4

#: ``==1234== Collected : 1,632,128,899`` (valgrind may or may not group the digits).
_COLLECTED = re.compile(r"^==\d+==\s*Collected\s*:\s*([\d,]+)\s*$", re.MULTILINE)
#: valgrind's own stderr lines start with ``==PID==``.
_VALGRIND_LINE = re.compile(r"^==\d+==\s*")
#: Where ``compat_suite`` can be imported from: the child runs there.
_ROOT = Path(__file__).resolve().parents[2]


class InstructionCountError(RuntimeError):
    """A counted run failed or printed no total; the message is one line."""


@dataclass(frozen=True)
class Total:
    """What one callgrind run counted: ``instructions`` for ``requests`` and start-up.

    :param requests: requests the child ran (after its checked first request).
    :param instructions: callgrind's ``Collected`` total for the whole process.
    """

    requests: int
    instructions: int


def parse_collected(stderr: str) -> int:
    """The instruction total from callgrind's stderr (its ``Collected :`` line).

    :param stderr: everything valgrind and the child printed on stderr.
    :raises InstructionCountError: if there is no such line.
    """
    found = _COLLECTED.findall(stderr)
    if not found:
        raise InstructionCountError("callgrind printed no 'Collected :' line")
    # The last one: a child's own output cannot come after valgrind's summary.
    return int(found[-1].replace(",", ""))


def instructions_per_request(small: Total, large: Total) -> float:
    """The marginal cost: instructions the extra requests of ``large`` took, each.

    :param small: the run with fewer requests.
    :param large: the run with more.
    :raises ValueError: unless ``large`` ran more requests than ``small``.
    """
    if large.requests <= small.requests:
        raise ValueError(f"need more requests in the large run: {large} vs {small}")
    return (large.instructions - small.instructions) / (large.requests - small.requests)


def valgrind_path() -> str | None:
    """Where ``valgrind`` is, or ``None`` when it is not on ``PATH``."""
    return shutil.which("valgrind")


def _concurrency(direction: Direction, adapter: str, load: Workload) -> int:
    return THREADS if drives_wsgi(direction, adapter, load) else TASKS


def _failure(stderr: str, returncode: int) -> str:
    """One line on why a run failed, and where its whole stderr is kept."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    own = [line for line in lines if not _VALGRIND_LINE.match(line)]
    # A crash: faulthandler's headline, else valgrind's "Process terminating ...".
    # Otherwise the child's last word, which is a traceback's last line.
    crash = [line for line in own if line.startswith("Fatal Python error")]
    crash += [_VALGRIND_LINE.sub("", line) for line in lines if "Process terminating" in line]
    if crash:
        why = crash[0]
    elif own:
        why = own[-1]
    else:
        why = f"exit status {returncode}"
    with tempfile.NamedTemporaryFile(
        "w", prefix="callgrind-", suffix=".log", delete=False, encoding="utf-8"
    ) as log:
        log.write(stderr)
    return f"{why} (stderr kept in {log.name})"


def _check_requests(requests: int) -> None:
    if requests <= 0 or requests % TASKS:
        raise ValueError(f"a request count must be a positive multiple of {TASKS}, not {requests}")


def check_counts(small: int, large: int) -> None:
    """Check the two request counts of a measurement before anything runs.

    :param small: requests in the small run.
    :param large: requests in the large run.
    :raises ValueError: unless both are positive multiples of :data:`TASKS` and
        ``large`` is more than ``small``.
    """
    for requests in (small, large):
        _check_requests(requests)
    if large <= small:
        raise ValueError(f"the large run needs more requests than the small one: {large} ≤ {small}")


def drive(direction: Direction, adapter: str, load: Workload, requests: int) -> Sample:
    """Run ``requests`` requests of one cell in this process (what the child does).

    :param direction: which side of the bridge the adapter sits on.
    :param adapter: an adapter name of that direction.
    :param load: the request to repeat.
    :param requests: how many, a multiple of :data:`TASKS`; one checked request comes first.
    :raises ValueError: for a request count that is not a multiple of :data:`TASKS`.
    :raises compat_suite.bench_apps.AdapterUnavailable: if the adapter cannot be built.
    :raises compat_suite.bench.inprocess.BadResponse: if the adapter answers wrongly.
    """
    import uvloop  # only here: the parent process never needs it

    _check_requests(requests)
    concurrency = _concurrency(direction, adapter, load)
    with InProcessBench(loop_factory=uvloop.new_event_loop) as bench:
        return bench.repeat(direction, adapter, load, concurrency, requests // concurrency)


def count_instructions(
    direction: Direction, adapter: str, load: Workload, requests: int, *, valgrind: str
) -> Total:
    """Run the child under callgrind and read its total.

    :param direction: which side of the bridge the adapter sits on.
    :param adapter: an adapter name of that direction.
    :param load: the request to repeat.
    :param requests: how many, a multiple of :data:`TASKS`.
    :param valgrind: the ``valgrind`` executable.
    :raises ValueError: for a request count that is not a multiple of :data:`TASKS`.
    :raises InstructionCountError: if the child fails or callgrind prints no total.
    """
    _check_requests(requests)
    child = [sys.executable, "-m", __name__, "--child", direction, adapter, load.name]
    argv = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", *child, str(requests)]
    environment = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONFAULTHANDLER": "1"}
    try:
        done = subprocess.run(
            argv, cwd=_ROOT, env=environment, capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise InstructionCountError(f"cannot run {valgrind}: {exc}") from exc
    if done.returncode != 0:
        why = _failure(done.stderr, done.returncode)
        raise InstructionCountError(f"{direction} {load.name} {adapter} ({requests}): {why}")
    return Total(requests, parse_collected(done.stderr))


def counted_cells(selection: Selection) -> list[Cell]:
    """The cells to count: the bench's in-process cells that ``selection`` admits.

    One per (direction, workload, adapter): the concurrent one, whose concurrency
    this module sets itself (rule 1).

    :param selection: the parsed ``--only`` filters.
    """
    cells = plan_cells(selection)
    return [cell for cell in cells if cell.scope == IN_PROCESS and cell.setting == "concurrent"]


def measure_cell(cell: Cell, small: int, large: int, *, valgrind: str) -> float:
    """Count ``cell`` at ``small`` and ``large`` requests: its instructions per request.

    :param cell: a cell of :func:`counted_cells`.
    :param small: requests in the small run, a multiple of :data:`TASKS`.
    :param large: requests in the large run, more than ``small``, a multiple of :data:`TASKS`.
    :param valgrind: the ``valgrind`` executable.
    :raises ValueError: for request counts that break those rules (:func:`check_counts`).
    :raises InstructionCountError: if a run fails or callgrind prints no total.
    """
    check_counts(small, large)
    runs = [
        count_instructions(cell.direction, cell.adapter, cell.workload, n, valgrind=valgrind)
        for n in (small, large)
    ]
    return instructions_per_request(*runs)


def render_table(rows: Sequence[tuple[Cell, float]], small: int, large: int) -> str:
    """The Markdown the command prints: one line of method, then the table.

    :param rows: each cell with its instructions per request.
    :param small: requests in the small run.
    :param large: requests in the large run.
    """
    lines = [
        f"Marginal instructions per request (callgrind), {small} vs {large} requests in process: "
        f"{TASKS} tasks on uvloop call an ASGI callable, {THREADS} threads a WSGI callable.",
        "",
        *markdown_table(
            ["Direction", "Workload", "Adapter", "Instructions/request"],
            ([c.direction, c.workload.name, c.adapter, f"{n:,.0f}"] for c, n in rows),
        ),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """The child: ``--child DIRECTION ADAPTER WORKLOAD N`` runs one cell, N requests.

    :param argv: the arguments (``sys.argv[1:]`` by default).
    :returns: the exit status (0; a failure is an exception, so a non-zero status).
    """
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}", description=__doc__)
    parser.add_argument("--child", action="store_true", required=True, help="run one cell")
    parser.add_argument("direction", choices=DIRECTIONS)
    parser.add_argument("adapter")
    parser.add_argument("workload")
    parser.add_argument("requests", type=int)
    options = parser.parse_args(argv)
    drive(options.direction, options.adapter, workload(options.workload), options.requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
