"""Counting instructions: callgrind's total, the marginal cost, the child and the command.

The child's driver runs in process, without valgrind, to show that it serves
checked answers; the command runs behind a stand-in ``valgrind`` that runs the
child bare and prints a made-up total; one cheap cell runs under callgrind for
real. Nothing here asserts a cost: the real run only checks that it is a
plausible number.
"""

from __future__ import annotations

import stat
import sys
import tempfile
from pathlib import Path

import pytest

from compat_suite.__main__ import main
from compat_suite.bench import Selection
from compat_suite.bench.instructions import (
    TASKS,
    InstructionCountError,
    Total,
    check_counts,
    count_instructions,
    counted_cells,
    drive,
    instructions_per_request,
    measure_cell,
    parse_collected,
    valgrind_path,
)
from compat_suite.bench.plan import IN_PROCESS, Cell
from compat_suite.bench.workloads import ASGI_IN_WSGI, WSGI_IN_ASGI, Direction, workload

pytestmark = pytest.mark.timeout(120)

_CALLGRIND_STDERR = """\
==4242== Callgrind, a call-graph generating cache profiler
==4242== Command: python -m compat_suite.bench.instructions --child wsgi-in-asgi native hello 640
==4242==
==4242== For interactive control, run 'callgrind_control -h'.
==4242==
==4242== Events    : Ir
==4242== Collected : {total}
==4242==
==4242== I   refs:      1,632,128,899
"""

#: Runs the child without valgrind, then prints a total of 1,000,000 + 1,000 per request.
_STAND_IN = """\
#!/bin/sh
shift 2
for requests; do :; done
"$@" || exit $?
echo "==1== Collected : $((1000000 + requests * 1000))" >&2
"""


#: What valgrind and faulthandler print when the child crashes (abridged).
_CRASH = """\
#!/bin/sh
echo 'Fatal Python error: Segmentation fault' >&2
echo '' >&2
echo 'Current thread 0x0000000005e4a6c0 (most recent call first):' >&2
echo '  File "/work/main/bridge/loop.py", line 1 in run' >&2
echo '==77== Process terminating with default action of signal 11 (SIGSEGV)' >&2
echo '==77==    at 0x4A1B2C3: _PyEval_EvalFrameDefault (ceval.c:1)' >&2
exit 139
"""


@pytest.fixture
def stand_in_valgrind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``valgrind`` first on ``PATH`` that runs the child bare (see :data:`_STAND_IN`).

    Failed runs keep their stderr in ``tmp_path`` too.
    """
    path = tmp_path / "valgrind"
    path.write_text(_STAND_IN, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}:{Path(sys.executable).parent}")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return path


def _kept_stderr(message: str) -> str:
    """The stderr a failure message says it kept."""
    assert message.endswith(".log)"), message
    return Path(message.rsplit(" ", 1)[-1].rstrip(")")).read_text(encoding="utf-8")


@pytest.mark.parametrize("total", ["1,632,128,899", "1632128899"])
def test_instructions_parse_collected_reads_the_total(total: str) -> None:
    assert parse_collected(_CALLGRIND_STDERR.format(total=total)) == 1_632_128_899


def test_instructions_parse_collected_without_a_total_raises() -> None:
    with pytest.raises(InstructionCountError, match="Collected"):
        parse_collected("==4242== Callgrind, a call-graph generating cache profiler\n")


def test_instructions_per_request_cancels_the_start_up() -> None:
    start_up = 1_100_000_000
    small = Total(640, start_up + 640 * 116_500)
    large = Total(3840, start_up + 3840 * 116_500)
    assert instructions_per_request(small, large) == pytest.approx(116_500)


def test_instructions_per_request_needs_more_requests_in_the_large_run() -> None:
    with pytest.raises(ValueError, match="more requests"):
        instructions_per_request(Total(640, 2), Total(640, 3))


@pytest.mark.parametrize(
    ("small", "large"), [(100, 3840), (640, 3850), (0, 3840), (640, 640), (3840, 640)]
)
def test_instructions_check_counts_rejects(small: int, large: int) -> None:
    with pytest.raises(ValueError, match=r"multiple of 32|more requests"):
        check_counts(small, large)


def test_instructions_counted_cells_one_per_direction_workload_adapter() -> None:
    cells = counted_cells(Selection.parse(["bridge", "hello"]))
    assert {(c.direction, c.workload.name, c.adapter) for c in cells} == {
        (WSGI_IN_ASGI, "hello", "bridge-thread"),
        (WSGI_IN_ASGI, "hello", "bridge-greenlet"),
        (ASGI_IN_WSGI, "hello", "bridge"),
    }
    assert all(cell.scope == IN_PROCESS for cell in cells)


@pytest.mark.parametrize(
    ("direction", "adapter", "name"),
    [
        (WSGI_IN_ASGI, "bridge-thread", "hello"),
        (WSGI_IN_ASGI, "bridge-greenlet", "upload-1m"),
        (WSGI_IN_ASGI, "native", "flask"),  # Flask's native row: the WSGI call, from threads
        (ASGI_IN_WSGI, "bridge", "hello"),
    ],
)
def test_instructions_drive_serves_checked_requests(
    direction: Direction, adapter: str, name: str
) -> None:
    # Every answer is checked by the driver (BadResponse otherwise); the count is exact.
    assert drive(direction, adapter, workload(name), 2 * TASKS).requests == 2 * TASKS


def test_instructions_drive_rejects_a_count_it_cannot_share() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        drive(WSGI_IN_ASGI, "native", workload("hello"), 100)


@pytest.mark.usefixtures("stand_in_valgrind")
def test_instructions_command_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["instructions", "--only", "bridge,hello", "--small", "64", "--large", "192"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    rows = [line for line in captured.out.splitlines() if line.startswith("| ")]
    assert rows == [
        "| Direction | Workload | Adapter | Instructions/request |",
        "| wsgi-in-asgi | hello | bridge-thread | 1,000 |",
        "| wsgi-in-asgi | hello | bridge-greenlet | 1,000 |",
        "| asgi-in-wsgi | hello | bridge | 1,000 |",
    ]
    assert "64 vs 192 requests" in captured.out


def test_instructions_child_failure_is_one_line(stand_in_valgrind: Path) -> None:
    with pytest.raises(InstructionCountError) as failure:
        count_instructions(
            WSGI_IN_ASGI, "nope", workload("hello"), TASKS, valgrind=str(stand_in_valgrind)
        )
    message = str(failure.value)
    assert "\n" not in message
    assert "ValueError: no WSGI-in-ASGI adapter 'nope'" in message
    assert "Traceback" in _kept_stderr(message)


def test_instructions_child_crash_names_the_crash(stand_in_valgrind: Path) -> None:
    stand_in_valgrind.write_text(_CRASH, encoding="utf-8")
    with pytest.raises(InstructionCountError) as failure:
        count_instructions(
            ASGI_IN_WSGI, "bridge", workload("hello"), TASKS, valgrind=str(stand_in_valgrind)
        )
    message = str(failure.value)
    assert message.startswith("asgi-in-wsgi hello bridge (32): Fatal Python error: Segmentation")
    assert "bridge/loop.py" in _kept_stderr(message)


@pytest.mark.usefixtures("stand_in_valgrind")
def test_instructions_command_fails_on_a_failing_child(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "valgrind").write_text("#!/bin/sh\necho 'broken' >&2\nexit 3\n", encoding="utf-8")
    assert main(["instructions", "--only", "native,hello,wsgi-in-asgi"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("instructions: wsgi-in-asgi hello native (640): broken (stderr kept")


def test_instructions_command_without_valgrind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["instructions", "--only", "hello"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert "valgrind" in err


@pytest.mark.parametrize("argv", [["--only", "nope"], ["--small", "100"], ["--only", "e2e"]])
def test_instructions_command_rejects_bad_options(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["instructions", *argv]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_instructions_under_callgrind() -> None:
    valgrind = valgrind_path()
    assert valgrind is not None, "valgrind is installed where this suite runs"
    cell = Cell(IN_PROCESS, WSGI_IN_ASGI, "concurrent", workload("hello"), "native")
    # A native ASGI hello plus the driver's own work: tens of thousands, not millions.
    assert 1_000 < measure_cell(cell, 64, 192, valgrind=valgrind) < 1_000_000
