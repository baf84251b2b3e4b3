"""Turn cell results into the Markdown the README shows: machine, method, tables, ratios.

Every ratio is a *throughput* ratio, row over reference, computed from the
medians: above 1.00 the row is faster. For "µs/req" that is reference µs over
row µs, the same number. A ratio takes its medians over the rounds both cells
completed, so a round one of them failed (:mod:`compat_suite.bench.runner`,
rule 3) never pits one round's machine against another's.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import importlib.util
import os
import platform
import statistics
import sys
from collections.abc import Iterable, Sequence

from compat_suite.bench.plan import E2E, FLASK_NATIVE_SERVER, IN_PROCESS, Cell
from compat_suite.bench.runner import CellResult, RunOptions
from compat_suite.bench.workloads import ASGI_IN_WSGI, WORKLOADS, WSGI_IN_ASGI
from compat_suite.bench.wrk import wrk_version

__all__ = [
    "STREAM_GOALS",
    "TARGETS",
    "format_ratio",
    "machine_lines",
    "markdown_table",
    "paired_ratio",
    "render_markdown",
    "round_ratios",
]

Key = tuple[str, str, str, str, str]
_MIB = 1024 * 1024

#: The comparisons issue 4 asks the output to make checkable:
#: (label, row, reference, goal as the row's throughput over the reference's).
TARGETS: tuple[tuple[str, Key, Key, float], ...] = (
    (
        "WSGI hello on uvicorn: bridge thread vs a2wsgi",
        (E2E, WSGI_IN_ASGI, "uvicorn", "hello", "bridge-thread"),
        (E2E, WSGI_IN_ASGI, "uvicorn", "hello", "a2wsgi"),
        4.0,
    ),
    (
        "WSGI hello on uvicorn: bridge greenlet vs a2wsgi",
        (E2E, WSGI_IN_ASGI, "uvicorn", "hello", "bridge-greenlet"),
        (E2E, WSGI_IN_ASGI, "uvicorn", "hello", "a2wsgi"),
        5.0,
    ),
    (
        "WSGI hello on uvicorn: bridge greenlet vs native ASGI hello",
        (E2E, WSGI_IN_ASGI, "uvicorn", "hello", "bridge-greenlet"),
        (E2E, WSGI_IN_ASGI, "uvicorn", "hello", "native"),
        0.6,
    ),
    (
        "Flask hello: bridge thread on uvicorn vs Flask on gunicorn sync",
        (E2E, WSGI_IN_ASGI, "uvicorn", "flask", "bridge-thread"),
        (E2E, WSGI_IN_ASGI, FLASK_NATIVE_SERVER, "flask", "native"),
        2.5,
    ),
    (
        "Flask hello: bridge greenlet on uvicorn vs Flask on gunicorn sync",
        (E2E, WSGI_IN_ASGI, "uvicorn", "flask", "bridge-greenlet"),
        (E2E, WSGI_IN_ASGI, FLASK_NATIVE_SERVER, "flask", "native"),
        2.5,
    ),
    (
        "ASGI hello on granian --interface wsgi: bridge vs a2wsgi",
        (E2E, ASGI_IN_WSGI, "granian-wsgi", "hello", "bridge"),
        (E2E, ASGI_IN_WSGI, "granian-wsgi", "hello", "a2wsgi"),
        3.5,
    ),
    (
        "ASGI hello on gunicorn gthread: bridge vs native WSGI hello",
        (E2E, ASGI_IN_WSGI, "gunicorn-gthread", "hello", "bridge"),
        (E2E, ASGI_IN_WSGI, "gunicorn-gthread", "hello", "native"),
        0.75,
    ),
)

#: Issue 4's stream goals, as throughput over a2wsgi's in the same cell:
#: 4 KiB pieces 4x, 64 KiB chunks 2x.
STREAM_GOALS: dict[str, float] = {
    "stream-down-4k": 4.0,
    "stream-up-4k": 4.0,
    "download-1m": 2.0,
    "upload-1m": 2.0,
}
_PACKAGES = (
    "asgi-wsgi-bridge", "a2wsgi", "asgiref", "anyio", "greenlet", "flask", "werkzeug",
    "uvicorn", "granian", "gunicorn", "h11", "httptools", "uvloop",
)  # fmt: skip


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_lines() -> list[str]:
    """Markdown bullet lines describing the machine and the software measured."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    packages = ", ".join(f"{name} {_version(name)}" for name in _PACKAGES)
    return [
        f"- machine: {_cpu_model()}; nproc {affinity or os.cpu_count()}; {platform.platform()}",
        f"- python: {platform.python_implementation()} {sys.version.split()[0]}",
        f"- packages: {packages}",
        f"- wrk: {wrk_version()}",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
    ]


def _index(results: Iterable[CellResult]) -> dict[Key, CellResult]:
    return {result.cell.key: result for result in results}


def _reference_key(cell: Cell, adapter: str) -> Key:
    setting = cell.setting
    if adapter == "native" and cell.scope == E2E and cell.workload.name == "flask":
        setting = FLASK_NATIVE_SERVER  # Flask's native row lives on gunicorn sync
    return (cell.scope, cell.direction, setting, cell.workload.name, adapter)


def _paired(row: CellResult, reference: CellResult) -> list[tuple[float, float]]:
    """(row, reference) requests per second of each round both completed."""
    theirs = reference.by_round()
    return [(ours, theirs[index]) for index, ours in row.by_round().items() if index in theirs]


def paired_ratio(row: CellResult | None, reference: CellResult | None) -> float | None:
    """The row's median over the reference's, over the rounds both completed.

    :returns: ``None`` when either is missing or they share no completed round.
    """
    if row is None or reference is None:
        return None
    pairs = _paired(row, reference)
    if not pairs:
        return None
    theirs = statistics.median(reference for _, reference in pairs)
    return statistics.median(ours for ours, _ in pairs) / theirs if theirs > 0 else None


def _ratio(row: CellResult | None, reference: CellResult | None, goal: float | None = None) -> str:
    ratio = paired_ratio(row, reference)
    return "—" if ratio is None else f"{format_ratio(ratio, goal)}×"


def format_ratio(value: float, goal: float | None = None) -> str:
    """``value`` with two decimals, or more where two would round across ``goal``.

    A ratio of 0.748 against a goal of 0.75 reads "0.748", not "0.75" beside
    a "not met" verdict.
    """
    for digits in range(2, 7):
        text = f"{value:.{digits}f}"
        if goal is None or (float(text) >= goal) == (value >= goal):
            break
    return text


def _mib_s(result: CellResult) -> float:
    return result.median_rps * result.cell.workload.payload_bytes / _MIB


def _completed(result: CellResult) -> str:
    """`` (2 of 3 rounds)`` after the numbers of a cell that failed some rounds."""
    if not result.failures:
        return ""
    return f" ({len(result.rps)} of {result.rounds} rounds)"


def _numbers(result: CellResult, *, micros: bool) -> list[str]:
    if not result.ok:
        blanks = ["—"] * (2 if micros else 1)
        return [result.status, *blanks]
    numbers = [f"{1e6 / result.median_rps:,.1f}"] if micros else []
    numbers.append(f"{result.median_rps:,.0f}{_completed(result)}")
    workload = result.cell.workload
    numbers.append(f"{_mib_s(result):,.1f}" if workload.reports_throughput else "")
    return numbers


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table.

    :param header: the column titles.
    :param rows: the cells, one sequence per row, as long as ``header``.
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _result_rows(
    results: Sequence[CellResult], index: dict[Key, CellResult], options: RunOptions
) -> list[list[str]]:
    rows = []
    for result in results:
        cell = result.cell
        setting = _setting(cell, options)
        ratios = [
            _ratio(result, index.get(_reference_key(cell, ref)))
            for ref in ("a2wsgi", "asgiref", "native")
        ]
        numbers = _numbers(result, micros=cell.scope == IN_PROCESS)
        spread = f"{result.spread * 100:.0f}%" if result.ok else ""
        extra = []
        if cell.scope == E2E:
            cpu = result.median_cpu_us
            extra = ["" if cpu is None or not result.ok else f"{cpu:,.0f}", str(result.errors)]
        name = cell.adapter
        if cell.adapter == "native" and cell.workload.name == "flask":
            name = "native (Flask, WSGI)"
        rows.append(
            [cell.direction, setting, cell.workload.name, name, *numbers, *ratios, spread, *extra]
        )
    return rows


def _setting(cell: Cell, options: RunOptions) -> str:
    if cell.scope == IN_PROCESS and cell.setting == "concurrent":
        return f"{options.connections} concurrent"
    return cell.setting


def _target_lines(index: dict[Key, CellResult]) -> list[str]:
    rows = []
    for label, row_key, reference_key, goal in TARGETS:
        row, reference = index.get(row_key), index.get(reference_key)
        # The same cell through the bare adapter: what any adapter could reach there.
        bare = index.get((*row_key[:4], "bare"))
        detail = "not measured"
        rounds = verdict = "—"
        if row is not None and reference is not None:
            detail = (
                f"{_short(row)} vs {_short(reference)} req/s"
                if row.ok and reference.ok
                else f"{row.status} / {reference.status}"
            )
            per_round = round_ratios(row, reference)
            rounds = " / ".join(format_ratio(value, goal) for value in per_round) or "—"
            verdict = _verdict(row, reference, goal, bare, "the bare adapter")
        ratios = [_ratio(row, reference, goal), f"{goal:g}×", rounds, verdict]
        ratios.append(_ratio(bare, reference, goal))
        rows.append([label, *ratios, detail])
    header = ["Comparison", "Ratio", "Goal", "Per round", "Verdict", "Bare adapter", "Medians"]
    return markdown_table(header, rows)


def round_ratios(row: CellResult, reference: CellResult) -> list[float]:
    """The row's throughput over the reference's, round by round.

    Rounds are interleaved: round *i* of both ran minutes apart at most, so
    their ratio is less exposed to the machine's drift than the medians'.
    Only rounds both completed count.
    """
    return [ours / theirs for ours, theirs in _paired(row, reference) if theirs > 0]


def _met(ratio: float, per_round: Sequence[float], goal: float, rounds: int) -> str:
    """``met`` or ``not met`` by the medians, and how many rounds disagree.

    :param rounds: how many rounds the two cells took part in; when fewer
        completed for both, the verdict says over how many it stands.
    """
    verdict = "met" if ratio >= goal else "not met"
    reached = sum(1 for value in per_round if value >= goal)
    if 0 < reached < len(per_round):
        verdict += f" (reached in {reached} of {len(per_round)} rounds)"
    if len(per_round) < rounds:
        verdict += f" (over the {len(per_round)} of {rounds} rounds both completed)"
    return verdict


def _short(result: CellResult) -> str:
    return f"{result.median_rps:,.0f}{_completed(result)}"


def _stream_lines(results: Sequence[CellResult], index: dict[Key, CellResult]) -> list[str]:
    rows = []
    for result in results:
        cell = result.cell
        goal = STREAM_GOALS.get(cell.workload.name)
        if goal is None or not cell.adapter.startswith("bridge"):
            continue
        reference = index.get(_reference_key(cell, "a2wsgi"))
        native = index.get(_reference_key(cell, "native"))
        ours = f"{_mib_s(result):,.1f}{_completed(result)}" if result.ok else result.status
        theirs = "—" if reference is None else (
            f"{_mib_s(reference):,.1f}{_completed(reference)}" if reference.ok
            else reference.status
        )  # fmt: skip
        rows.append(
            [
                cell.scope,
                cell.direction,
                cell.setting,
                cell.workload.name,
                cell.adapter,
                ours,
                theirs,
                _ratio(result, reference, goal),
                f"{goal:g}×",
                _ratio(native, reference, goal),
                _verdict(result, reference, goal, native, "the native app"),
            ]
        )
    header = ["Scope", "Direction", "Setting", "Workload", "Adapter", "MiB/s", "a2wsgi MiB/s"]
    header += ["Ratio", "Goal", "Native ratio", "Verdict"]
    return markdown_table(header, rows)


def _verdict(
    row: CellResult,
    reference: CellResult | None,
    goal: float,
    ceiling: CellResult | None,
    ceiling_name: str,
) -> str:
    """Whether ``row`` reaches ``goal`` times ``reference``; names a goal its ceiling misses.

    :param ceiling: the same cell without an adapter (native) or through the
        least an adapter can do (bare), if measured.
    :param ceiling_name: what the verdict calls it.
    """
    ratio = paired_ratio(row, reference)
    if ratio is None or reference is None:
        return "—"
    rounds = max(row.rounds, reference.rounds)
    verdict = _met(ratio, round_ratios(row, reference), goal, rounds)
    if verdict.startswith("met"):
        return verdict
    ceiling_ratio = paired_ratio(ceiling, reference)
    if ceiling_ratio is not None and ceiling_ratio < goal:
        # Not even the ceiling reaches the goal in this cell.
        return f"{verdict}; {ceiling_name} misses it too"
    return verdict


def render_markdown(
    results: Sequence[CellResult], options: RunOptions, command: str, *, quick: bool = False
) -> str:
    """The whole report.

    :param results: from :func:`compat_suite.bench.runner.run_cells`.
    :param options: what the run used (shown in the method line).
    :param command: the command line that produced it, shown verbatim.
    :param quick: mark the report as a smoke run whose numbers mean little.
    """
    index = _index(results)
    in_process = [r for r in results if r.cell.scope == IN_PROCESS]
    end_to_end = [r for r in results if r.cell.scope == E2E]
    lines = ["## Benchmark", "", f"Command: `{command}`", ""]
    if quick:
        lines += ["**Quick smoke run: durations too short for the numbers to mean much.**", ""]
    lines += machine_lines()
    lines += [
        f"- method: {options.rounds} interleaved rounds (adapter order rotates each round); "
        f"medians shown; in process {options.inproc_duration:g} s per cell on one asyncio loop "
        f"(ASGI callables) or 1 / {options.connections} threads (WSGI callables); end to end "
        f"`wrk -t{options.wrk_threads} -c{options.connections} -d{options.duration}s`, "
        "one server worker, wrk on the same machine",
        "- ratios: throughput of the row over the reference (above 1.00× the row is faster); "
        "Flask's native reference is the same Flask app on gunicorn's sync worker; "
        "`bare` is the least an adapter can do (`compat_suite/bare.py`: a WSGI app called "
        "inline on the loop, an ASGI app given one hop to a private loop and one back; "
        "bodies in memory, nothing checked; not adapters to use): the ceiling of any "
        "adapter, Flask's included, measured for `hello` and `flask`; "
        "asgiref has no ASGI-to-WSGI adapter; spread = (max − min) / median over rounds; "
        "per round = the ratio within each interleaved round, and a verdict says how many "
        "rounds disagree with the medians' one; a cell that failed a round is tried again "
        "the next one, shows how many rounds it completed, and is compared over the rounds "
        "both sides completed",
        "- server CPU µs/req (end to end): user + system time of the server's process tree "
        "while wrk ran, over the requests wrk completed, median over rounds; it counts every "
        "server thread (work overlapping on two cores counts twice), not wrk's own",
        "- workloads: "
        + "; ".join(f"`{w.name}` {w.description}" for w in WORKLOADS)
        + "; MiB/s counts payload bytes (request body for uploads, response body for downloads)",
        "",
    ]
    lines += ["### Targets", "", *_target_lines(index), ""]
    lines += ["### Streams vs a2wsgi", ""]
    lines += [
        "Goal: issue 4's throughput over a2wsgi's in the same cell. Native ratio: the "
        "native app's own over a2wsgi's, roughly the ceiling for any adapter there.",
        "",
        *_stream_lines(results, index),
        "",
    ]
    ratio_header = ["vs a2wsgi", "vs asgiref", "vs native", "spread"]
    if in_process:
        header = ["Direction", "Mode", "Workload", "Adapter", "µs/req", "req/s", "MiB/s"]
        rows = _result_rows(in_process, index, options)
        table = markdown_table(header + ratio_header, rows)
        lines += ["### In process (no sockets)", "", *table, ""]
    if end_to_end:
        header = ["Direction", "Server", "Workload", "Adapter", "req/s", "MiB/s"]
        rows = _result_rows(end_to_end, index, options)
        lines += [
            "### End to end (wrk, one server worker)",
            "",
            *markdown_table([*header, *ratio_header, "server CPU µs/req", "errors"], rows),
            "",
        ]
    problems = [r for r in results if r.unavailable or r.failures]
    if problems:
        lines += ["### Failed rounds and cells not measured", "", *_problem_lines(problems), ""]
    servers = {r.cell.setting: r.argv for r in end_to_end if r.argv}
    if servers:
        lines += ["### Server command lines", ""]
        lines += [f"- {name}: `{' '.join(_relative(argv))}`" for name, argv in servers.items()]
        lines.append("")
    return "\n".join(lines)


def _problem_lines(problems: Sequence[CellResult]) -> list[str]:
    # One line per distinct reason: a missing adapter would otherwise fill a page.
    grouped: dict[tuple[str, str, str], list[CellResult]] = {}
    for result in problems:
        for what, reason in _problems_of(result):
            grouped.setdefault((result.cell.adapter, what, reason), []).append(result)
    lines = []
    for (adapter, what, reason), members in grouped.items():
        where = ", ".join(
            " ".join((r.cell.scope, r.cell.setting, r.cell.workload.name)) for r in members[:4]
        )
        more = f" and {len(members) - 4} more" if len(members) > 4 else ""
        lines.append(f"- {adapter} ({where}{more}): {what}: {reason}")
    return lines


def _problems_of(result: CellResult) -> list[tuple[str, str]]:
    """(what happened, why) for a cell: unavailable, or each failed round."""
    if result.unavailable:
        return [("unavailable", result.unavailable)]
    return [
        (f"failed in round {index + 1} of {result.rounds}", reason)
        for index, reason in sorted(result.failures.items())
    ]


def _relative(argv: list[str]) -> list[str]:
    # The interpreter path says nothing useful and leaks the local venv's location.
    return ["python", *argv[1:]] if argv else argv
