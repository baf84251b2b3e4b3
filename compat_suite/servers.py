"""Real HTTP servers, started as subprocesses on 127.0.0.1 for end-to-end checks.

Rules:

1. Every server runs as ``sys.executable -m <server>`` (or our own wsgiref script),
   so the interpreter and packages are the caller's venv. Nothing here imports a
   server; availability is an import-spec check.
2. Every server gets its own session (process group), so stopping it reaches the
   workers a master forked or spawned: the server's stop signal (SIGTERM; SIGINT
   for waitress, launched through :mod:`compat_suite.sigint_default` so that
   an ignored SIGINT inherited from the caller cannot stop it from stopping) to
   the group, wait with a deadline, then SIGKILL to the group.
   Some servers hang on shutdown; a test run must not. Before the SIGKILL, the
   leader gets SIGABRT: servers run with ``PYTHONFAULTHANDLER=1``, so a hung
   Python server writes every thread's stack into its log, which says why it hung.
3. A server is "ready" when its port accepts a TCP connection. Startup fails fast
   (with the server's own log) when the process exits before that, and fails after
   a deadline otherwise.
4. stdout and stderr go to one temporary log file, so a failure can show them.
   It is opened for appending, so the harness's own notes land after them.

No pytest here: ``serve()`` is a plain context manager any driver can use::

    with serve("uvicorn", "compat_suite.apps.flask_app:application",
               env={"BRIDGE_ADAPTER": "a2wsgi"}) as server:
        httpx.get(server.base_url + "/")
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "SERVERS",
    "RunningServer",
    "ServerSpec",
    "ServerStartError",
    "available_servers",
    "launch",
    "serve",
    "unavailable_servers",
]

HOST = "127.0.0.1"
#: The repository root: servers run there, so ``compat_suite.apps.*`` imports.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

Interface = Literal["asgi", "wsgi"]


@dataclass(frozen=True)
class _Launch:
    """What one command line needs to know."""

    target: str
    host: str
    port: int
    workers: int
    threads: int


@dataclass(frozen=True)
class ServerSpec:
    """How to run one server.

    :param name: registry key, e.g. ``"gunicorn-gthread"``.
    :param interface: ``"asgi"`` if it hosts ASGI apps, ``"wsgi"`` if it hosts WSGI apps.
    :param module: the import name whose presence makes the server available.
    :param argv: builds the command line (without the interpreter) from a launch.
    :param workers: default number of worker processes.
    :param threads: default number of threads per worker, where the server has them.
    :param stop_signal: the signal that stops the server gracefully.
    """

    name: str
    interface: Interface
    module: str
    argv: Callable[[_Launch], list[str]]
    workers: int = 1
    threads: int = 4
    stop_signal: signal.Signals = signal.SIGTERM

    @property
    def available(self) -> bool:
        """Whether the server's package is importable in this interpreter."""
        return importlib.util.find_spec(self.module) is not None


def _version_at_least(distribution: str, minimum: tuple[int, ...]) -> bool:
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    parts = []
    for piece in version.split(".")[: len(minimum)]:
        digits = "".join(itertools.takewhile(str.isdigit, piece))
        parts.append(int(digits or 0))
    return tuple(parts) >= minimum


def _uvicorn(launch: _Launch) -> list[str]:
    return [
        "-m", "uvicorn", launch.target,
        "--host", launch.host, "--port", str(launch.port),
        "--workers", str(launch.workers),
        "--timeout-graceful-shutdown", "5",
    ]  # fmt: skip


def _hypercorn(worker_class: str) -> Callable[[_Launch], list[str]]:
    def argv(launch: _Launch) -> list[str]:
        return [
            "-m", "hypercorn", launch.target,
            "--bind", f"{launch.host}:{launch.port}",
            "--workers", str(launch.workers),
            "--worker-class", worker_class,
            "--graceful-timeout", "5",
        ]  # fmt: skip

    return argv


def _granian(interface: Interface) -> Callable[[_Launch], list[str]]:
    def argv(launch: _Launch) -> list[str]:
        args = [
            "-m", "granian", "--interface", interface,
            "--host", launch.host, "--port", str(launch.port),
            "--workers", str(launch.workers),
            "--workers-kill-timeout", "5",
        ]  # fmt: skip
        if interface == "wsgi":
            args += ["--blocking-threads", str(launch.threads)]
        return [*args, launch.target]

    return argv


def _daphne(launch: _Launch) -> list[str]:
    return ["-m", "daphne", "-b", launch.host, "-p", str(launch.port), launch.target]


def _gunicorn(worker_class: str, *, preload: bool = False) -> Callable[[_Launch], list[str]]:
    def argv(launch: _Launch) -> list[str]:
        args = [
            "-m", "gunicorn", launch.target,
            "--bind", f"{launch.host}:{launch.port}",
            "--workers", str(launch.workers),
            "--worker-class", worker_class,
            "--graceful-timeout", "5",
            # A sync worker busy with one long transfer misses its heartbeat; the
            # 1 GiB memory checks must not be killed by the arbiter.
            "--timeout", "300",
        ]  # fmt: skip
        if _version_at_least("gunicorn", (25, 1)):
            # Since 25.1 gunicorn opens a control socket under ~/.gunicorn by
            # default; servers running side by side would share its path.
            args.append("--no-control-socket")
        if worker_class == "gthread":
            args += ["--threads", str(launch.threads)]
        if preload:
            args.append("--preload")
        return args

    return argv


def _waitress(launch: _Launch) -> list[str]:
    # Its stop signal is SIGINT, which a parent may have left ignored.
    return [
        "-m", "compat_suite.sigint_default", "waitress",
        "--host", launch.host, "--port", str(launch.port),
        "--threads", str(launch.threads),
        launch.target,
    ]  # fmt: skip


def _wsgiref(launch: _Launch) -> list[str]:
    return [
        "-m", "compat_suite.wsgiref_server", launch.target,
        "--host", launch.host, "--port", str(launch.port),
    ]  # fmt: skip


def _cheroot(launch: _Launch) -> list[str]:
    return [
        "-m", "cheroot", "--bind", f"{launch.host}:{launch.port}",
        "--threads", str(launch.threads), launch.target,
    ]  # fmt: skip


#: Every server the suite knows, available or not, by name.
SERVERS: Mapping[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        ServerSpec("uvicorn", "asgi", "uvicorn", _uvicorn),
        ServerSpec("hypercorn", "asgi", "hypercorn", _hypercorn("asyncio")),
        ServerSpec("hypercorn-trio", "asgi", "trio", _hypercorn("trio")),
        ServerSpec("granian-asgi", "asgi", "granian", _granian("asgi")),
        ServerSpec("daphne", "asgi", "daphne", _daphne),
        ServerSpec("gunicorn-sync", "wsgi", "gunicorn", _gunicorn("sync")),
        ServerSpec("gunicorn-gthread", "wsgi", "gunicorn", _gunicorn("gthread")),
        ServerSpec(
            "gunicorn-preload", "wsgi", "gunicorn", _gunicorn("sync", preload=True), workers=2
        ),
        # waitress leaves SIGTERM to Python's default (exit at once, no atexit);
        # SIGINT is its graceful stop.
        ServerSpec("waitress", "wsgi", "waitress", _waitress, stop_signal=signal.SIGINT),
        ServerSpec("wsgiref", "wsgi", "wsgiref", _wsgiref),
        ServerSpec("granian-wsgi", "wsgi", "granian", _granian("wsgi")),
        ServerSpec("cheroot", "wsgi", "cheroot", _cheroot),
    )
}


def available_servers(interface: Interface | None = None) -> list[str]:
    """Names of the servers that can run here, optionally only one interface's.

    :param interface: ``"asgi"`` or ``"wsgi"``; ``None`` for both.
    """
    return [
        name
        for name, spec in SERVERS.items()
        if spec.available and (interface is None or spec.interface == interface)
    ]


def unavailable_servers() -> list[str]:
    """Names of the known servers whose package is not installed."""
    return [name for name, spec in SERVERS.items() if not spec.available]


class ServerStartError(RuntimeError):
    """A server exited before accepting connections, or did not accept any in time."""


@dataclass
class RunningServer:
    """A started server: where it listens and what it logged.

    ``pid`` is the process we started (gunicorn's arbiter, uvicorn's single
    process...); the process answering requests may be a child of it.
    """

    name: str
    target: str
    base_url: str
    port: int
    pid: int
    log_path: Path
    argv: list[str] = field(default_factory=list)

    def log_text(self, limit: int = 20_000) -> str:
        """The last ``limit`` characters the server wrote to stdout and stderr."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "<no log>"
        return text[-limit:]


def _free_port(host: str) -> int:
    # Racy by nature (the port is free now, not necessarily at bind time); serve()
    # retries with a fresh port when the server reports the address in use.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_until_listening(
    proc: subprocess.Popen[bytes], host: str, port: int, deadline: float, log_path: Path
) -> None:
    while True:
        if proc.poll() is not None:
            raise ServerStartError(
                f"server exited with status {proc.returncode} before listening on "
                f"{host}:{port}:\n{_tail(log_path)}"
            )
        if _accepts(host, port):
            return
        if time.monotonic() > deadline:
            raise ServerStartError(
                f"server did not listen on {host}:{port} in time:\n{_tail(log_path)}"
            )
        # Poll the port, but wake at once if the process exits meanwhile.
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.05)


def _tail(log_path: Path, limit: int = 8_000) -> str:
    try:
        return log_path.read_text(encoding="utf-8", errors="replace")[-limit:]
    except FileNotFoundError:
        return "<no log>"


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


#: Seconds a hung server gets to write its stacks after SIGABRT (rule 2).
_STACK_DUMP_GRACE = 2.0


def _stop(
    proc: subprocess.Popen[bytes], stop_signal: signal.Signals, grace: float, log_path: Path
) -> None:
    """Signal the process group, wait up to ``grace`` seconds, then SIGKILL it.

    A server still running after ``grace`` is first asked for its stacks (rule 2).
    """
    pgid = proc.pid  # start_new_session=True: the server leads its own group
    _signal_group(pgid, stop_signal)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with log_path.open("a", encoding="utf-8") as log:
            log.write(
                f"\n[compat_suite] still running {grace:g} s after {stop_signal.name}: "
                "SIGABRT for its stacks, then SIGKILL\n"
            )
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(proc.pid, signal.SIGABRT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=_STACK_DUMP_GRACE)
        _signal_group(pgid, signal.SIGKILL)
        proc.wait(timeout=grace)
    # Workers that outlived their master (or ignored SIGTERM) go too.
    _signal_group(pgid, signal.SIGKILL)


_ADDRESS_IN_USE = ("address already in use", "errno 98", "os error 98")


@contextlib.contextmanager
def serve(
    server: str,
    target: str,
    *,
    env: Mapping[str, str] | None = None,
    workers: int | None = None,
    threads: int | None = None,
    extra_args: Sequence[str] = (),
    startup_timeout: float = 30.0,
    stop_timeout: float = 10.0,
    keep_log: bool = False,
) -> Iterator[RunningServer]:
    """Run ``target`` ("module:attr") on the named server until the block exits.

    :param server: a key of :data:`SERVERS`.
    :param target: the app to serve, as the server's command line takes it.
    :param env: extra environment variables for the server (e.g. ``BRIDGE_ADAPTER``).
    :param workers: worker processes; defaults to the server's registry default.
    :param threads: threads per worker where the server has them.
    :param extra_args: appended to the server's command line.
    :param startup_timeout: seconds to wait for the port to accept connections.
    :param stop_timeout: seconds to wait after the stop signal before SIGKILL.
    :param keep_log: keep the log file after the server stops.
    :raises KeyError: for an unknown server name.
    :raises ServerStartError: if the server is not installed, exits early or never listens.
    """
    spec = SERVERS[server]
    if not spec.available:
        raise ServerStartError(f"server {server!r} is not installed (needs {spec.module!r})")

    def command(host: str, port: int) -> list[str]:
        launch = _Launch(
            target=target,
            host=host,
            port=port,
            workers=spec.workers if workers is None else workers,
            threads=spec.threads if threads is None else threads,
        )
        return [sys.executable, *spec.argv(launch), *extra_args]

    with launch(
        server,
        command,
        target=target,
        env=env,
        startup_timeout=startup_timeout,
        stop_timeout=stop_timeout,
        stop_signal=spec.stop_signal,
        keep_log=keep_log,
    ) as running:
        yield running


@contextlib.contextmanager
def launch(
    name: str,
    command: Callable[[str, int], Sequence[str]],
    *,
    target: str = "",
    env: Mapping[str, str] | None = None,
    startup_timeout: float = 30.0,
    stop_timeout: float = 10.0,
    stop_signal: signal.Signals = signal.SIGTERM,
    keep_log: bool = False,
) -> Iterator[RunningServer]:
    """Run any server command line until the block exits; :func:`serve` is built on it.

    :param name: a label for logs and reports.
    :param command: builds the argv from the host and the free port to listen on.
    :param target: what it serves, for reports.
    :param env: extra environment variables.
    :param startup_timeout: seconds to wait for the port to accept connections.
    :param stop_timeout: seconds to wait after ``stop_signal`` before SIGKILL.
    :param stop_signal: what asks the server to stop gracefully.
    :param keep_log: keep the log file after the server stops.
    :raises ServerStartError: if the process exits early or never listens.
    """
    child_env = dict(os.environ)
    child_env.update(env or {})
    # Servers import "module:attr" relative to the project root.
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), child_env.get("PYTHONPATH", "")) if p
    )
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    # Rule 2: a server that hangs on stop dumps its stacks on SIGABRT.
    child_env.setdefault("PYTHONFAULTHANDLER", "1")

    attempts = 3
    for attempt in range(attempts):
        port = _free_port(HOST)
        argv = list(command(HOST, port))
        fd, log_name = tempfile.mkstemp(prefix=f"bridge-{name}-", suffix=".log")
        log_path = Path(log_name)
        os.close(fd)
        # Append mode: the server and _stop's notes both land at the end (rule 4).
        with log_path.open("ab") as log_file:
            proc = subprocess.Popen(
                argv,
                cwd=PROJECT_ROOT,
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            try:
                _wait_until_listening(
                    proc, HOST, port, time.monotonic() + startup_timeout, log_path
                )
            except ServerStartError:
                in_use = any(s in _tail(log_path).lower() for s in _ADDRESS_IN_USE)
                if in_use and attempt + 1 < attempts:
                    _stop(proc, stop_signal, stop_timeout, log_path)
                    log_path.unlink(missing_ok=True)
                    continue
                raise
            yield RunningServer(
                name=name,
                target=target,
                base_url=f"http://{HOST}:{port}",
                port=port,
                pid=proc.pid,
                log_path=log_path,
                argv=argv,
            )
            return
        finally:
            if proc.returncode is None:
                _stop(proc, stop_signal, stop_timeout, log_path)
            else:
                _signal_group(proc.pid, signal.SIGKILL)
            if not keep_log:
                log_path.unlink(missing_ok=True)
    raise AssertionError("unreachable")  # pragma: no cover
