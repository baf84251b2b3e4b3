"""Which cells a benchmark run measures: the full grid, narrowed by ``--only``.

A cell is (scope, direction, setting, workload, adapter), where the setting is
the in-process mode (``sequential`` / ``concurrent``) or the server's name.

Rules:

1. WSGI-in-ASGI adapters run on ASGI servers (uvicorn, granian-asgi); ASGI-in-WSGI
   adapters on WSGI servers (granian-wsgi, gunicorn-gthread); one worker each.
2. Flask has no native ASGI form, so its "native" row on the ASGI servers is the
   same Flask app on gunicorn's sync worker: one extra cell, ``gunicorn-sync``.
3. The bare adapters (:mod:`compat_suite.bare`) hold bodies in memory: they
   run only the workloads of :data:`BARE_WORKLOADS`, bodyless requests with
   a 13-byte answer, where that changes nothing; a streamed body through
   them would not be one.
4. ``--only`` tokens name a scope, direction, workload, adapter (``bridge``
   means every bridge row) or server. Tokens of one kind are or-ed, kinds are
   and-ed. Naming a server adds ``e2e`` to the scopes (servers only filter e2e cells).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from compat_suite import bench_apps
from compat_suite.bench.workloads import (
    ASGI_IN_WSGI,
    DIRECTIONS,
    WORKLOADS,
    WSGI_IN_ASGI,
    Direction,
    Workload,
)

__all__ = [
    "BARE_WORKLOADS",
    "E2E",
    "E2E_SERVERS",
    "FLASK_NATIVE_SERVER",
    "IN_PROCESS",
    "MODES",
    "Cell",
    "Selection",
    "UnknownFilter",
    "adapters_for",
    "plan_cells",
]

BenchScope = Literal["in-process", "e2e"]
IN_PROCESS: BenchScope = "in-process"
E2E: BenchScope = "e2e"
MODES: tuple[str, ...] = ("sequential", "concurrent")

#: Servers per direction, in report order.
E2E_SERVERS: dict[Direction, tuple[str, ...]] = {
    WSGI_IN_ASGI: ("uvicorn", "granian-asgi"),
    ASGI_IN_WSGI: ("granian-wsgi", "gunicorn-gthread"),
}
#: Where the native Flask reference runs.
FLASK_NATIVE_SERVER = "gunicorn-sync"
#: The workloads the bare adapters run (rule 3).
BARE_WORKLOADS = frozenset({"hello", "flask"})


def adapters_for(direction: Direction) -> tuple[str, ...]:
    """The adapter rows of a direction, in report order.

    :param direction: ``"wsgi-in-asgi"`` or ``"asgi-in-wsgi"``.
    """
    return bench_apps.WSGI_IN_ASGI if direction == WSGI_IN_ASGI else bench_apps.ASGI_IN_WSGI


@dataclass(frozen=True)
class Cell:
    """One measured number per round.

    :param scope: ``"in-process"`` or ``"e2e"``.
    :param direction: which side of the bridge the adapter sits on.
    :param setting: ``"sequential"``/``"concurrent"`` in process, else the server's name.
    :param workload: the request.
    :param adapter: the adapter row (``"native"`` for the ceiling).
    """

    scope: BenchScope
    direction: Direction
    setting: str
    workload: Workload
    adapter: str

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """A hashable identity, stable across rounds."""
        return (self.scope, self.direction, self.setting, self.workload.name, self.adapter)


class UnknownFilter(ValueError):
    """An ``--only`` token names nothing the benchmark knows."""


@dataclass(frozen=True)
class Selection:
    """Parsed ``--only`` filters; an empty set means "no filter on this kind"."""

    scopes: frozenset[str] = frozenset()
    directions: frozenset[str] = frozenset()
    workloads: frozenset[str] = frozenset()
    adapters: frozenset[str] = frozenset()
    servers: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, tokens: Iterable[str]) -> Selection:
        """Sort comma-separated tokens into kinds.

        :param tokens: ``--only`` values, each possibly ``"a,b"``.
        :raises UnknownFilter: for a token that names nothing.
        """
        known_servers = {s for group in E2E_SERVERS.values() for s in group}
        known_servers.add(FLASK_NATIVE_SERVER)
        known_adapters = {*bench_apps.WSGI_IN_ASGI, *bench_apps.ASGI_IN_WSGI}
        kinds: dict[str, set[str]] = {k: set() for k in ("sc", "di", "wo", "ad", "se")}
        for token in (t.strip() for raw in tokens for t in raw.split(",")):
            if not token:
                continue
            if token in (IN_PROCESS, E2E):
                kinds["sc"].add(token)
            elif token in DIRECTIONS:
                kinds["di"].add(token)
            elif token in {w.name for w in WORKLOADS}:
                kinds["wo"].add(token)
            elif token in known_adapters:
                kinds["ad"].add(token)
            elif token in known_servers:
                kinds["se"].add(token)
            else:
                raise UnknownFilter(
                    f"--only {token!r} is not a scope, direction, workload, adapter or server; "
                    f"known: {', '.join(sorted({IN_PROCESS, E2E, *DIRECTIONS}))}, "
                    f"{', '.join(w.name for w in WORKLOADS)}, {', '.join(sorted(known_adapters))},"
                    f" {', '.join(sorted(known_servers))}"
                )
        if kinds["se"]:
            kinds["sc"].add(E2E)
        return cls(*(frozenset(kinds[k]) for k in ("sc", "di", "wo", "ad", "se")))

    def admits(self, cell: Cell) -> bool:
        """Whether ``cell`` passes every filter that applies to it.

        :param cell: a cell of the full grid.
        """
        family = cell.adapter.split("-", 1)[0]
        return (
            (not self.scopes or cell.scope in self.scopes)
            and (not self.directions or cell.direction in self.directions)
            and (not self.workloads or cell.workload.name in self.workloads)
            and (not self.adapters or cell.adapter in self.adapters or family in self.adapters)
            and (cell.scope != E2E or not self.servers or cell.setting in self.servers)
        )


def _adapters_running(direction: Direction, workload: Workload) -> list[str]:
    """The adapter rows of ``direction`` that run ``workload`` (rule 3)."""
    return [
        adapter
        for adapter in adapters_for(direction)
        if adapter != "bare" or workload.name in BARE_WORKLOADS
    ]


def _grid() -> list[Cell]:
    cells: list[Cell] = []
    for direction in DIRECTIONS:
        for workload in WORKLOADS:
            if direction not in workload.directions:
                continue
            adapters = _adapters_running(direction, workload)
            for mode in MODES:
                cells += [Cell(IN_PROCESS, direction, mode, workload, a) for a in adapters]
            for server in E2E_SERVERS[direction]:
                cells += [
                    Cell(E2E, direction, server, workload, adapter)
                    for adapter in adapters
                    if not (adapter == "native" and workload.name == "flask")
                ]
            if workload.name == "flask":
                cells.append(Cell(E2E, direction, FLASK_NATIVE_SERVER, workload, "native"))
    return cells


def plan_cells(selection: Selection) -> list[Cell]:
    """Every cell of the grid that ``selection`` admits, in report order.

    :param selection: the parsed ``--only`` filters.
    """
    return [cell for cell in _grid() if selection.admits(cell)]
