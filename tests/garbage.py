"""Counting what only the cycle collector frees, for the no-cycles tests of both adapters."""

from __future__ import annotations

import gc
from types import TracebackType

__all__ = ["NewCycles"]


class NewCycles:
    """``with NewCycles() as cycles:`` counts the cyclic garbage made inside the block.

    The collector is off inside, so nothing is freed behind the count's
    back; ``cycles.found`` is then the number of objects made in the block
    that reference counting alone did not free.
    """

    found: int

    def __enter__(self) -> NewCycles:
        gc.collect()
        gc.disable()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if kind is None:
                # Only the youngest generation: what was made since
                # __enter__. A full pass would also count older garbage that
                # another thread let go of meanwhile: on a busy machine it
                # found an earlier test's closed event loop and its tasks,
                # released late by a thread of that test.
                self.found = gc.collect(0)
        finally:
            gc.enable()
