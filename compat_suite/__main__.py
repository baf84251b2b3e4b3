"""``python -m compat_suite <command>``: the suite's command line.

Without a subcommand it runs the conformance ``matrix``. Each subcommand is a
pair of functions, one adding its options to a subparser
and one running it; :data:`COMMANDS` lists them, so a new one (the conformance
``matrix``) is one more entry.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["COMMANDS", "DEFAULT_COMMAND", "Command", "main"]


@dataclass(frozen=True)
class Command:
    """One subcommand.

    :param name: what follows ``python -m compat_suite``.
    :param help: the one-line summary ``--help`` shows.
    :param add_arguments: adds the subcommand's options to its parser.
    :param run: runs it with the parsed options and returns the exit status.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# --------------------------------------------------------------------------- bench

#: ``--quick`` values, used where the option was not given explicitly.
_QUICK = {"rounds": 1, "duration": 1, "inproc_duration": 0.05}
_FULL = {"rounds": 3, "duration": 5, "inproc_duration": 1.0}


def _add_only_argument(
    parser: argparse.ArgumentParser, scopes: str = "", servers: str = ""
) -> None:
    """``--only``, parsed by :class:`compat_suite.bench.Selection`, with the names it takes."""
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAMES",
        help=(
            f"measure only matching cells; comma-separated, repeatable. Names: {scopes}"
            "wsgi-in-asgi, asgi-in-wsgi, a workload (hello, flask, download-1m, upload-1m, "
            "stream-down-4k, stream-up-4k, upload-lines), an adapter (bridge, bridge-thread, "
            f"bridge-greenlet, a2wsgi, asgiref, bare, native){servers}. Same kind: or; "
            "different kinds: and"
        ),
    )


def _add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 round, 1 s per e2e cell, 0.05 s in process",
    )
    _add_only_argument(
        parser,
        scopes="in-process, e2e, ",
        servers=(
            " or a server (uvicorn, granian-asgi, granian-wsgi, gunicorn-gthread, gunicorn-sync)"
        ),
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 1)")
    parser.add_argument(
        "--duration", type=int, help="seconds per end-to-end cell, whole (default 5; quick 1)"
    )
    parser.add_argument(
        "--inproc-duration", type=float, help="seconds per in-process cell (default 1; quick 0.05)"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=32,
        help="wrk connections and in-process concurrency (default 32)",
    )
    parser.add_argument("--output", type=Path, help="also write the Markdown report here")


def _run_bench(options: argparse.Namespace) -> int:
    # Imported here so `python -m compat_suite --help` (and other commands) stay light.
    from compat_suite.bench import RunOptions, Selection, UnknownFilter, plan_cells, run_cells
    from compat_suite.bench.report import render_markdown

    defaults = _QUICK if options.quick else _FULL
    for name, value in defaults.items():
        if getattr(options, name) is None:
            setattr(options, name, value)
    if options.rounds < 1 or options.duration < 1 or options.inproc_duration <= 0:
        print("bench: --rounds and --duration need ≥ 1, --inproc-duration > 0", file=sys.stderr)
        return 2
    if options.connections < 1:
        print("bench: --connections needs ≥ 1", file=sys.stderr)
        return 2
    try:
        selection = Selection.parse(options.only)
    except UnknownFilter as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    cells = plan_cells(selection)
    if not cells:
        print("bench: the --only filters select nothing", file=sys.stderr)
        return 2
    run_options = RunOptions(
        rounds=options.rounds,
        duration=options.duration,
        inproc_duration=options.inproc_duration,
        connections=options.connections,
    )
    results = run_cells(cells, run_options)
    command = shlex.join(["python", "-m", "compat_suite", *options.argv])
    report = render_markdown(results, run_options, command, quick=options.quick)
    print(report)
    if options.output is not None:
        options.output.write_text(report + "\n", encoding="utf-8")
    return 0


# --------------------------------------------------------------------------- instructions


def _add_instructions_arguments(parser: argparse.ArgumentParser) -> None:
    _add_only_argument(parser)
    parser.add_argument(
        "--small", type=int, default=640, help="requests in the small run (default 640)"
    )
    parser.add_argument(
        "--large", type=int, default=3840, help="requests in the large run (default 3840)"
    )


def _run_instructions(options: argparse.Namespace) -> int:
    from compat_suite.bench import Selection, UnknownFilter
    from compat_suite.bench.instructions import (
        InstructionCountError,
        check_counts,
        counted_cells,
        measure_cell,
        render_table,
        valgrind_path,
    )

    try:
        check_counts(options.small, options.large)
        cells = counted_cells(Selection.parse(options.only))
    except (ValueError, UnknownFilter) as exc:
        print(f"instructions: {exc}", file=sys.stderr)
        return 2
    if not cells:
        print("instructions: the --only filters select no in-process cell", file=sys.stderr)
        return 2
    valgrind = valgrind_path()
    if valgrind is None:
        print("instructions: valgrind is not on PATH (it counts the instructions)", file=sys.stderr)
        return 2
    rows = []
    for cell in cells:
        try:
            per_request = measure_cell(cell, options.small, options.large, valgrind=valgrind)
        except InstructionCountError as exc:
            print(f"instructions: {exc}", file=sys.stderr)
            return 2
        rows.append((cell, per_request))
        # A cell takes from seconds to minutes under callgrind: say where the run is.
        where = f"{cell.direction} {cell.workload.name} {cell.adapter}"
        print(f"instructions: {where}: {per_request:,.0f}", file=sys.stderr, flush=True)
    print(render_table(rows, options.small, options.large))
    return 0


# --------------------------------------------------------------------------- matrix

_REPORT_MD = Path(__file__).resolve().parent / "REPORT.md"
_REPORT_HTML = Path(__file__).resolve().parent / "out" / "report.html"


def _add_matrix_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the CI subset: each server and scenario once, bridge only",
    )
    for name, what in (
        (
            "server",
            "a server (uvicorn, hypercorn, hypercorn-trio, granian-asgi, daphne, gunicorn, ...)",
        ),
        (
            "adapter",
            "an adapter (bridge, bridge-thread, bridge-greenlet, bridge-trio, a2wsgi, ...)",
        ),
        ("framework", "a framework (wsgi, flask, django, asgi, fastapi, starlette, django-asgi)"),
        ("scenario", "a scenario (see compat_suite/matrix/scenarios.py)"),
    ):
        parser.add_argument(
            f"--{name}", action="append", default=[], metavar="NAME",
            help=f"only {what}; repeatable; a prefix before '-' matches too",
        )  # fmt: skip
    parser.add_argument("--markdown", type=Path, default=_REPORT_MD, help="Markdown output path")
    parser.add_argument("--html", type=Path, default=_REPORT_HTML, help="HTML output path")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def _run_matrix(options: argparse.Namespace) -> int:
    import time

    from compat_suite.matrix.progress import ProgressBar
    from compat_suite.matrix.report import render_html, render_markdown
    from compat_suite.matrix.runner import plan, run_matrix, select_scenarios

    try:
        scenarios = select_scenarios(options.scenario)
    except KeyError as exc:
        print(f"matrix: {exc.args[0]}", file=sys.stderr)
        return 2
    rows = plan(
        quick=options.quick,
        servers=options.server,
        adapters=options.adapter,
        frameworks=options.framework,
    )
    if not rows or not scenarios:
        print("matrix: the filters select nothing", file=sys.stderr)
        return 2
    started = time.monotonic()
    with ProgressBar(len(rows) * len(scenarios), enabled=not options.no_progress) as bar:
        cells = run_matrix(rows, scenarios, on_cell=bar.advance)
    seconds = time.monotonic() - started
    command = shlex.join(["python", "-m", "compat_suite", *options.argv])
    markdown = render_markdown(cells, command=command, seconds=seconds)
    options.markdown.parent.mkdir(parents=True, exist_ok=True)
    options.markdown.write_text(markdown, encoding="utf-8")
    options.html.parent.mkdir(parents=True, exist_ok=True)
    options.html.write_text(render_html(cells, command=command, seconds=seconds), encoding="utf-8")
    failed = sum(1 for c in cells if c.status == "fail")
    bridge_failed = sum(
        1 for c in cells if c.status == "fail" and c.row.adapter.startswith("bridge")
    )
    print(
        f"matrix: {len(cells)} cells in {seconds:.0f} s, "
        f"{failed} failing ({bridge_failed} bridge); "
        f"wrote {options.markdown} and {options.html}",
        file=sys.stderr,
    )
    return 1 if bridge_failed else 0


#: Every subcommand, in ``--help`` order.
COMMANDS: tuple[Command, ...] = (
    Command(
        "bench",
        "side-by-side benchmark of bridge, a2wsgi, asgiref and the native apps",
        _add_bench_arguments,
        _run_bench,
    ),
    Command(
        "instructions",
        "marginal CPU instructions per request, counted by callgrind, in process",
        _add_instructions_arguments,
        _run_instructions,
    ),
    Command(
        "matrix",
        "the conformance matrix: servers x frameworks x adapters x scenarios (the default)",
        _add_matrix_arguments,
        _run_matrix,
    ),
)

#: What ``python -m compat_suite`` runs without a subcommand.
DEFAULT_COMMAND = "matrix"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (``sys.argv[1:]`` by default) and run the chosen subcommand.

    :param argv: the arguments after ``python -m compat_suite``.
    :returns: the process exit status.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    names = {command.name for command in COMMANDS}
    if not any(a in names or a in ("-h", "--help") for a in arguments[:1]):
        arguments = [DEFAULT_COMMAND, *arguments]
    parser = argparse.ArgumentParser(prog="python -m compat_suite", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    options = parser.parse_args(arguments)
    options.argv = arguments
    status: int = options.run(options)
    return status


if __name__ == "__main__":
    sys.exit(main())
