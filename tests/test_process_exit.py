"""bridge.process_exit: callbacks run however the process exits.

The children here are real :mod:`multiprocessing` processes, started the way
granian starts its workers: their target returns and the process leaves
through ``os._exit()``, which skips ``atexit``.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge import AsgiToWsgi, process_exit
from bridge.types import Receive, Scope, Send

pytestmark = pytest.mark.timeout(60)

CONTEXTS = ["fork", "spawn"] if sys.platform != "win32" else ["spawn"]


class _Mark:
    """A picklable callback that appends one line to a file."""

    def __init__(self, path: str, line: str) -> None:
        self.path = path
        self.line = line

    def __call__(self) -> None:
        with open(self.path, "a", encoding="ascii") as f:
            f.write(self.line + "\n")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Mark) and (self.path, self.line) == (other.path, other.line)

    def __hash__(self) -> int:
        return hash((self.path, self.line))


def _register_then_return(path: str) -> None:
    process_exit.register(_Mark(path, "kept"))
    process_exit.register(_Mark(path, "dropped"))
    process_exit.unregister(_Mark(path, "dropped"))


def _register_then_sys_exit(path: str) -> None:
    # Both exits are offered: multiprocessing's hook, then atexit once
    # SystemExit has unwound the interpreter. The callback runs once.
    process_exit.register(_Mark(path, "kept"))
    process_exit.register(_Mark(path, "kept"))
    sys.exit(0)


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="ascii").splitlines() if path.exists() else []


def _run(context: str, target: Callable[..., None], *args: object) -> None:
    mp_context: Any = multiprocessing.get_context(context)
    process = mp_context.Process(target=target, args=args)
    process.start()
    process.join(30)
    assert process.exitcode == 0, process.exitcode


@pytest.mark.parametrize("context", CONTEXTS)
def test_a_multiprocessing_child_runs_its_callbacks(context: str, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    _run(context, _register_then_return, str(marks))
    assert _lines(marks) == ["kept"]


@pytest.mark.parametrize("context", CONTEXTS)
def test_sys_exit_in_a_child_still_runs_the_callback(context: str, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    _run(context, _register_then_sys_exit, str(marks))
    assert _lines(marks) == ["kept"]


def test_unregister_of_an_unknown_callback_is_a_no_op(tmp_path: Path) -> None:
    process_exit.unregister(_Mark(str(tmp_path / "never"), "never"))


class _LoggingLifespan:
    """An ASGI app whose lifespan writes "startup" and "shutdown" to a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            event = message["type"].removeprefix("lifespan.")
            # A tiny append in a test app; blocking the loop for it is fine.
            with open(self.path, "a", encoding="ascii") as f:  # noqa: ASYNC230
                f.write(event + "\n")
            await send({"type": f"lifespan.{event}.complete"})
            if event == "shutdown":
                return


def _serve_then_return(path: str, backend: str) -> None:
    adapter = AsgiToWsgi(_LoggingLifespan(path), backend=backend)  # type: ignore[arg-type]
    with adapter:
        pass
    # A second startup, left running as a server's worker would leave it.
    adapter.__enter__()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("context", CONTEXTS)
def test_asgi_to_wsgi_shuts_down_in_a_multiprocessing_worker(
    context: str, backend: str, tmp_path: Path
) -> None:
    log = tmp_path / "lifespan"
    _run(context, _serve_then_return, str(log), backend)
    assert _lines(log) == ["startup", "shutdown", "startup", "shutdown"]
