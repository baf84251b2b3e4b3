"""The bridge rows of the conformance matrix's quick subset, through real servers.

Each row of :data:`compat_suite.matrix.runner.QUICK` starts its server once
(on the row's first test) and runs every scenario against it; each test then
reports one cell. A bridge cell must pass or fail with a documented known gap
(:mod:`compat_suite.matrix.gaps`); a bridge bug found by the matrix is listed in
:data:`BRIDGE_BUGS` as a strict xfail, so the fix flips it. The full matrix,
with the peers, is ``python -m compat_suite``.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compat_suite.apps.probes import FILE_BODY
from compat_suite.matrix.runner import QUICK, Cell, Row, run_row
from compat_suite.matrix.scenarios import SCENARIOS
from compat_suite.matrix.variants import MATRIX_ADAPTER_ENV
from tests.cli_process import ROOT

#: Cell id -> what is wrong in bridge (file, line), for failures the matrix found.
BRIDGE_BUGS: dict[str, str] = {}


@functools.cache
def _cells(row: Row) -> dict[str, Cell]:
    return {cell.scenario: cell for cell in run_row(row)}


def _params() -> list[pytest.param]:  # type: ignore[valid-type]
    params = []
    for row in QUICK:
        for scenario in SCENARIOS:
            if row.framework not in scenario.frameworks:
                continue
            cell_id = f"{row.id}-{scenario.name}"
            marks = []
            if cell_id in BRIDGE_BUGS:
                marks.append(pytest.mark.xfail(reason=BRIDGE_BUGS[cell_id], strict=True))
            params.append(pytest.param(row, scenario.name, id=cell_id, marks=marks))
    return params


@pytest.mark.parametrize(("row", "scenario"), _params())
def test_matrix_cell(row: Row, scenario: str) -> None:
    cell = _cells(row)[scenario]
    if cell.status == "n/a":
        pytest.skip(cell.detail)
    assert cell.status in ("pass", "gap"), f"{cell.id}: {cell.detail}"


def test_quick_subset_covers_every_server_and_scenario() -> None:
    from compat_suite.matrix.runner import SERVERS_BY_DIRECTION

    servers = {row.server for row in QUICK}
    assert servers == {s for group in SERVERS_BY_DIRECTION.values() for s in group}
    covered = {s.name for s in SCENARIOS for row in QUICK if row.framework in s.frameworks}
    assert covered == {s.name for s in SCENARIOS}
    assert all(row.adapter.startswith("bridge-") for row in QUICK)


def test_the_pathsend_file_is_one_shared_file_not_one_per_process(tmp_path: Path) -> None:
    # Every server process imports the app; none may leave a file of its own.
    show = "import compat_suite.apps.conformance_asgi as app; print(app.PATHSEND_FILE)"
    env = {**os.environ, "TMPDIR": str(tmp_path), MATRIX_ADAPTER_ENV: "bridge-asyncio"}
    paths = {
        subprocess.run(
            [sys.executable, "-c", show], cwd=ROOT, env=env, capture_output=True, text=True,
            check=True,
        ).stdout.strip()
        for _ in range(3)
    }  # fmt: skip
    assert [Path(path) for path in paths] == list(tmp_path.iterdir())
    assert Path(paths.pop()).read_bytes() == FILE_BODY
