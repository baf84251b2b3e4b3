"""CPU time of a server's process tree, read from ``/proc`` (Linux).

Rules:

1. A server is the process the benchmark started plus every live descendant
   (gunicorn's arbiter and its worker, granian's supervisor and its worker):
   :func:`process_tree` lists them, and :func:`tree_cpu_seconds` sums user
   and system time over all of them.
2. Throughput on a shared 2-core machine moves by ±20% between runs; the CPU a
   server spends per request moves less, and it is what an adapter adds to
   the server's bill. The end-to-end cells report it beside requests per
   second (CPU time of the tree during the ``wrk`` run, over the requests
   ``wrk`` completed). It counts every thread of the server, so work that
   overlaps on two cores counts twice, and it says nothing of ``wrk``'s own.
3. Where ``/proc`` is missing (not Linux), the reading is ``None`` and the
   report leaves the column empty.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["parse_stat", "process_tree", "tree_cpu_seconds"]

_PROC = Path("/proc")


def parse_stat(text: str) -> tuple[int, int]:
    """The parent pid and the CPU ticks (user + system) of one ``/proc/PID/stat`` line.

    ``proc(5)``: field 2 is the command name in parentheses, and it may itself
    hold spaces and parentheses, so the fields are counted from the last ``)``:
    state (3), ppid (4), ..., utime (14), stime (15).

    :raises ValueError: for a line that is not a stat line.
    """
    end = text.rfind(")")
    if end < 0:
        raise ValueError(f"not a /proc stat line: {text[:80]!r}")
    fields = text[end + 2 :].split()
    if len(fields) < 13:
        raise ValueError(f"not a /proc stat line: {text[:80]!r}")
    return int(fields[1]), int(fields[11]) + int(fields[12])


def _stats() -> dict[int, tuple[int, int]]:
    """``pid -> (ppid, ticks)`` for every process that can be read now."""
    found = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            found[int(entry.name)] = parse_stat((entry / "stat").read_text())
        except (OSError, ValueError):
            continue  # gone since listed, or not readable
    return found


def _tree(pid: int, stats: dict[int, tuple[int, int]]) -> list[int]:
    """``pid`` and its descendants among ``stats`` (rule 1); empty if ``pid`` is not there."""
    if pid not in stats:
        return []
    children: dict[int, list[int]] = {}
    for child, (parent, _ticks) in stats.items():
        children.setdefault(parent, []).append(child)
    tree = []
    todo = [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (rule 1); empty where ``/proc`` cannot be read."""
    return _tree(pid, _stats()) if _PROC.is_dir() else []


def tree_cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of ``pid`` and its live descendants (rule 1).

    :returns: ``None`` where ``/proc`` cannot be read, or ``pid`` is gone.
    """
    if not (_PROC / "self" / "stat").exists():
        return None
    stats = _stats()
    tree = _tree(pid, stats)
    if not tree:
        return None
    ticks = sum(stats[member][1] for member in tree)
    return ticks / os.sysconf("SC_CLK_TCK")
