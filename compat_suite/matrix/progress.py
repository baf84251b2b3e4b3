"""A one-line progress bar on stderr, no dependency: cells done, failures, the current row."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

from compat_suite.matrix.runner import Cell

__all__ = ["ProgressBar"]


class ProgressBar:
    """Redraws ``[#####.....] 120/900 cells, 3 failing, 2:10, row`` in place.

    :param total: the number of cells expected.
    :param enabled: draw nothing when False.
    :param stream: where to draw (stderr).
    """

    def __init__(self, total: int, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.failed = 0
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self._started = time.monotonic()

    def advance(self, cell: Cell) -> None:
        """Count ``cell`` and redraw."""
        self.done += 1
        self.failed += cell.status == "fail"
        row_changed = cell.row.id != getattr(self, "_row", None)
        self._row = cell.row.id
        if not self.enabled or not (row_changed or self.done == self.total or self.done % 10 == 0):
            return
        width = 30
        filled = min(width, width * self.done // self.total)
        elapsed = int(time.monotonic() - self._started)
        line = (
            f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} cells, "
            f"{self.failed} failing, {elapsed // 60}:{elapsed % 60:02d}, {cell.row.id}"
        )
        self.stream.write(line[:160].ljust(160))
        self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
