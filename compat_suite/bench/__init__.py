"""The side-by-side benchmark (issue 4): bridge, its peers and the native apps, interleaved.

``python -m compat_suite bench`` is the command; this package is its library:

- :mod:`~compat_suite.bench.workloads`: what one request is;
- :mod:`~compat_suite.bench.plan`: which cells to measure (``--only``);
- :mod:`~compat_suite.bench.inprocess`: the no-socket drivers;
- :mod:`~compat_suite.bench.wrk`: the end-to-end load generator;
- :mod:`~compat_suite.bench.runner`: interleaved rounds over real servers;
- :mod:`~compat_suite.bench.report`: medians, ratios and the Markdown tables;
- :mod:`~compat_suite.bench.instructions`: instructions per request, counted by
  callgrind (``python -m compat_suite instructions``).

Performance is reported, never asserted: nothing here fails on a slow number.
"""

from __future__ import annotations

from compat_suite.bench.plan import Cell, Selection, UnknownFilter, plan_cells
from compat_suite.bench.report import render_markdown
from compat_suite.bench.runner import CellResult, RunOptions, run_cells

__all__ = [
    "Cell",
    "CellResult",
    "RunOptions",
    "Selection",
    "UnknownFilter",
    "plan_cells",
    "render_markdown",
    "run_cells",
]
