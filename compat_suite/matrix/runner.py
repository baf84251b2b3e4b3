"""Plan and run the matrix: one server per (server, framework, adapter), all its scenarios.

Rules:

1. A row is one deployment; its server starts once, every applicable scenario
   runs against it in order, then it stops and the ``after_stop`` checks read
   its log. Rows run one after another: on two cores, parallel servers make
   timing-sensitive scenarios flaky, and reliability beats speed here.
2. Every cell gets an outcome: ``pass``; ``fail`` with what was expected and
   seen; ``gap`` (a failure that :data:`KNOWN_GAPS` explains: something the
   server or WSGI itself cannot carry); or ``n/a`` with the reason (the
   framework has no such route, the adapter does not exist in this direction).
   Nothing is skipped silently.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from compat_suite.matrix.gaps import KNOWN_GAPS, known_gap
from compat_suite.matrix.scenarios import SCENARIOS, Scenario
from compat_suite.matrix.variants import (
    ASGI_IN_WSGI,
    MATRIX_ADAPTER_ENV,
    WSGI_IN_ASGI,
    bridge_executor_available,
)
from compat_suite.servers import SERVERS, ServerStartError, serve

__all__ = [
    "FRAMEWORKS",
    "KNOWN_GAPS",
    "QUICK",
    "SERVERS_BY_DIRECTION",
    "Cell",
    "Row",
    "Status",
    "plan",
    "run_matrix",
    "run_row",
]

Status = Literal["pass", "fail", "gap", "n/a"]
Direction = Literal["wsgi-in-asgi", "asgi-in-wsgi"]

#: Framework -> (direction, the served target).
FRAMEWORKS: dict[str, tuple[Direction, str]] = {
    "wsgi": ("wsgi-in-asgi", "compat_suite.apps.conformance_wsgi:application"),
    "flask": ("wsgi-in-asgi", "compat_suite.apps.matrix_flask:application"),
    "django": ("wsgi-in-asgi", "compat_suite.apps.matrix_django:application"),
    "asgi": ("asgi-in-wsgi", "compat_suite.apps.conformance_asgi:application"),
    "fastapi": ("asgi-in-wsgi", "compat_suite.apps.matrix_fastapi:application"),
    "starlette": ("asgi-in-wsgi", "compat_suite.apps.starlette_app:application"),
    "django-asgi": ("asgi-in-wsgi", "compat_suite.apps.matrix_django_asgi:application"),
}
SERVERS_BY_DIRECTION: dict[Direction, tuple[str, ...]] = {
    "wsgi-in-asgi": ("uvicorn", "hypercorn", "hypercorn-trio", "granian-asgi", "daphne"),
    "asgi-in-wsgi": (
        "gunicorn-sync", "gunicorn-gthread", "waitress", "wsgiref", "granian-wsgi", "cheroot",
    ),
}  # fmt: skip
ADAPTERS_BY_DIRECTION: dict[Direction, tuple[str, ...]] = {
    "wsgi-in-asgi": WSGI_IN_ASGI,
    "asgi-in-wsgi": ASGI_IN_WSGI,
}


@dataclass(frozen=True)
class Row:
    """One deployment: ``framework``'s app through ``adapter`` on ``server``."""

    server: str
    framework: str
    adapter: str

    @property
    def id(self) -> str:
        """``server-framework-adapter``."""
        return f"{self.server}-{self.framework}-{self.adapter}"

    @property
    def direction(self) -> Direction:
        """Which way the bridge goes."""
        return FRAMEWORKS[self.framework][0]


@dataclass(frozen=True)
class Cell:
    """One outcome: ``row`` × ``scenario`` is ``status``, ``detail`` says why."""

    row: Row
    scenario: str
    status: Status
    detail: str = ""
    seconds: float = 0.0

    @property
    def id(self) -> str:
        """``server-framework-adapter-scenario``."""
        return f"{self.row.id}-{self.scenario}"


#: The quick subset (CI): each server once, each scenario at least once, bridge only.
QUICK: tuple[Row, ...] = (
    Row("uvicorn", "wsgi", "bridge-thread"),
    Row("hypercorn-trio", "wsgi", "bridge-greenlet"),
    Row("hypercorn", "flask", "bridge-thread"),
    Row("granian-asgi", "django", "bridge-thread"),
    Row("daphne", "flask", "bridge-thread"),
    Row("gunicorn-gthread", "asgi", "bridge-asyncio"),
    Row("gunicorn-sync", "asgi", "bridge-trio"),
    Row("waitress", "starlette", "bridge-trio"),
    Row("wsgiref", "django-asgi", "bridge-asyncio"),
    Row("granian-wsgi", "fastapi", "bridge-asyncio"),
    Row("cheroot", "django-asgi", "bridge-asyncio"),
)


def _matches(value: str, wanted: Sequence[str]) -> bool:
    return not wanted or any(value == w or value.startswith(w + "-") for w in wanted)


def plan(
    *,
    quick: bool = False,
    servers: Sequence[str] = (),
    adapters: Sequence[str] = (),
    frameworks: Sequence[str] = (),
) -> list[Row]:
    """The rows to run: the full matrix (or :data:`QUICK`) narrowed by the filters.

    A filter matches a name exactly or as a prefix before ``-`` (``bridge``
    selects every bridge variant, ``gunicorn`` both gunicorn workers).
    """
    if quick:
        rows: Iterable[Row] = QUICK
    else:
        rows = [
            Row(server, framework, adapter)
            for framework, (direction, _) in FRAMEWORKS.items()
            for server in SERVERS_BY_DIRECTION[direction]
            for adapter in ADAPTERS_BY_DIRECTION[direction]
        ]
    return [
        row
        for row in rows
        if _matches(row.server, servers)
        and _matches(row.adapter, adapters)
        and _matches(row.framework, frameworks)
    ]


def _not_runnable(row: Row) -> str | None:
    """Why ``row`` cannot start at all, or None."""
    if row.direction == "asgi-in-wsgi" and row.adapter == "asgiref":
        return "asgiref has no ASGI-in-WSGI adapter"
    if row.adapter.startswith("bridge-") and row.direction == "wsgi-in-asgi":
        executor = row.adapter.removeprefix("bridge-")
        if not bridge_executor_available(executor):
            return f"this bridge build has no {executor!r} executor"
    if not SERVERS[row.server].available:
        return f"{row.server} is not installed (needs {SERVERS[row.server].module!r})"
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, AssertionError):
        return str(exc) or "assertion failed"
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {Path(last[0].filename).name}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _judge(row: Row, scenario: str, error: BaseException | None, seconds: float) -> Cell:
    if error is None:
        return Cell(row, scenario, "pass", seconds=seconds)
    detail = _describe(error)
    gap = known_gap(row, scenario, detail)
    if gap is not None:
        return Cell(row, scenario, "gap", f"{gap.reason} (seen: {detail})", seconds)
    return Cell(row, scenario, "fail", detail, seconds)


def run_row(
    row: Row,
    scenarios: Sequence[Scenario] = SCENARIOS,
    on_cell: Callable[[Cell], None] = lambda cell: None,
) -> list[Cell]:
    """Start ``row``'s server, run ``scenarios`` against it, stop it; one cell per scenario."""
    cells: list[Cell] = []

    def emit(cell: Cell) -> None:
        cells.append(cell)
        on_cell(cell)

    applicable = [s for s in scenarios if row.framework in s.frameworks]
    for scenario in scenarios:
        if row.framework not in scenario.frameworks:
            emit(Cell(row, scenario.name, "n/a", f"not a {row.framework} scenario"))
    reason = _not_runnable(row)
    if reason is not None:
        for scenario in applicable:
            emit(Cell(row, scenario.name, "n/a", reason))
        return cells
    target = FRAMEWORKS[row.framework][1]
    log_text = ""
    log_path: Path | None = None
    # A scenario judged after the stop: its live check only sets the stage,
    # and a failure there is the scenario's one cell.
    stage_errors: dict[str, BaseException] = {}
    try:
        with serve(
            row.server, target, env={MATRIX_ADAPTER_ENV: row.adapter}, keep_log=True
        ) as server:
            log_path = server.log_path
            for scenario in applicable:
                check = scenario.checks.get(row.framework)
                if check is None:
                    continue
                started = time.monotonic()
                error: BaseException | None = None
                try:
                    with httpx.Client(base_url=server.base_url, timeout=20.0) as client:
                        check(row.adapter, server.base_url, client)
                except Exception as exc:  # a scenario's failure is data, whatever it is
                    error = exc
                if row.framework in scenario.after_stop:
                    if error is not None:
                        stage_errors[scenario.name] = error
                    continue
                emit(_judge(row, scenario.name, error, time.monotonic() - started))
    except ServerStartError as exc:
        for scenario in applicable:
            emit(Cell(row, scenario.name, "fail", f"server did not start: {str(exc)[-400:]}"))
        return cells
    finally:
        if log_path is not None:
            log_text = log_path.read_text(encoding="utf-8", errors="replace")
            log_path.unlink(missing_ok=True)
    for scenario in applicable:
        after = scenario.after_stop.get(row.framework)
        if after is None:
            continue
        error = stage_errors.get(scenario.name)
        if error is None:
            try:
                after(row.adapter, log_text)
            except Exception as exc:
                error = exc
        emit(_judge(row, scenario.name, error, 0.0))
    return cells


def run_matrix(
    rows: Sequence[Row],
    scenarios: Sequence[Scenario] = SCENARIOS,
    on_cell: Callable[[Cell], None] = lambda cell: None,
) -> list[Cell]:
    """Run every row in turn; the cells in row order."""
    cells: list[Cell] = []
    for row in rows:
        cells.extend(run_row(row, scenarios, on_cell))
    return cells


def select_scenarios(names: Sequence[str]) -> list[Scenario]:
    """The scenarios named (all when ``names`` is empty), in report order.

    :raises KeyError: for an unknown name.
    """
    known = {s.name for s in SCENARIOS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KeyError(f"unknown scenarios {unknown}; known: {sorted(known)}")
    return [s for s in SCENARIOS if not names or s.name in names]
