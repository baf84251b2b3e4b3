"""``python -m compat_suite <command>``: the suite's command line.

Each subcommand is a pair of functions, one adding its options to a subparser
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

__all__ = ["COMMANDS", "Command", "main"]


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


def _add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 round, 1 s per e2e cell, 0.05 s in process",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAMES",
        help=(
            "measure only matching cells; comma-separated, repeatable. Names: in-process, e2e, "
            "wsgi-in-asgi, asgi-in-wsgi, a workload (hello, flask, download-1m, upload-1m, "
            "stream-down-4k, stream-up-4k), an adapter (bridge, bridge-thread, bridge-greenlet, "
            "a2wsgi, asgiref, native) or a server (uvicorn, granian-asgi, granian-wsgi, "
            "gunicorn-gthread, gunicorn-sync). Same kind: or; different kinds: and"
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


#: Every subcommand, in ``--help`` order.
COMMANDS: tuple[Command, ...] = (
    Command(
        "bench",
        "side-by-side benchmark of bridge, a2wsgi, asgiref and the native apps",
        _add_bench_arguments,
        _run_bench,
    ),
)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (``sys.argv[1:]`` by default) and run the chosen subcommand.

    :param argv: the arguments after ``python -m compat_suite``.
    :returns: the process exit status.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
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
