"""The servers ``bridge serve`` runs in-process, through each server's Python API.

Rules:
1. A server is either an ASGI host (uvicorn, hypercorn, granian) or a WSGI host
   (gunicorn, waitress, wsgiref); :mod:`bridge.cli` hands each one an app of its
   own interface, bridged as needed. Nothing here detects or wraps apps.
2. A server package is imported only when it is run; whether it is installed is
   an import-spec check, so a missing one is a clean error, not a traceback.
3. Servers that start worker *processes* by importing a target (uvicorn and
   hypercorn with ``--workers`` > 1, granian always) get
   :data:`FACTORY_TARGET`: each worker rebuilds the app from the serve spec that
   :mod:`bridge.cli` put in the environment. gunicorn forks after loading, so it
   takes the app object.
4. A polite stop (SIGTERM) ends the process with exit status 0 after its
   ``finally`` blocks and ``atexit`` hooks ran (the lifespan shutdown of an
   ``AsgiToWsgi`` app among them), on every server. waitress and wsgiref get
   SIGTERM turned into ``SystemExit``. uvicorn shuts down gracefully on
   SIGTERM, then raises the signal again under the handler it found, which
   by default kills the process and skips ``atexit``: given the same
   handler, its stop ends in ``SystemExit`` too. hypercorn, granian and
   gunicorn exit normally on their own.
"""

from __future__ import annotations

import asyncio
import importlib.util
import signal
import socketserver
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, Literal

__all__ = ["FACTORY_TARGET", "SERVERS", "ServerOptions", "ServerSpec", "UnsupportedOption"]

#: The import string worker processes use to rebuild the app (rule 3).
FACTORY_TARGET = "bridge.cli:served_app"


class UnsupportedOption(ValueError):
    """An option the chosen server cannot honour (e.g. ``--workers`` on waitress)."""


@dataclass(frozen=True)
class ServerOptions:
    """What the command line asked for.

    :param host: the address to bind.
    :param port: the TCP port.
    :param workers: worker processes.
    :param threads: threads per worker for WSGI hosts; ``None`` for the default.
    :param log_level: a :mod:`logging` level name, lower case.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    threads: int | None = None
    log_level: str = "info"


def _sigterm_exits() -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, handler)


def _run_uvicorn(app: Any, options: ServerOptions) -> None:
    import uvicorn

    if options.workers > 1:
        uvicorn.run(
            FACTORY_TARGET,
            factory=True,
            host=options.host,
            port=options.port,
            workers=options.workers,
            log_level=options.log_level,
        )
        return
    config = uvicorn.Config(app, host=options.host, port=options.port, log_level=options.log_level)
    _sigterm_exits()  # what uvicorn raises SIGTERM under once it stopped (rule 4)
    uvicorn.Server(config).run()


def _run_hypercorn(app: Any, options: ServerOptions) -> None:
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{options.host}:{options.port}"]
    config.loglevel = options.log_level.upper()
    config.accesslog = "-"
    if options.workers > 1:
        from hypercorn.run import run

        config.workers = options.workers
        # hypercorn evaluates the part after ':' as an expression: a factory call.
        config.application_path = FACTORY_TARGET + "()"
        sys.exit(run(config))
    from hypercorn.asyncio import serve

    asyncio.run(serve(app, config))  # hypercorn handles SIGINT/SIGTERM itself


def _run_granian(app: Any, options: ServerOptions) -> None:
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    del app  # granian's workers import the app themselves (rule 3)
    Granian(
        FACTORY_TARGET,
        factory=True,
        address=options.host,
        port=options.port,
        interface=Interfaces.ASGI,
        workers=options.workers,
        log_level=LogLevels(options.log_level),
    ).serve()


def _run_gunicorn(app: Any, options: ServerOptions) -> None:
    from gunicorn.app.base import BaseApplication

    settings: dict[str, Any] = {
        "bind": f"{options.host}:{options.port}",
        "workers": options.workers,
        "worker_class": "gthread" if (options.threads or 1) > 1 else "sync",
        "loglevel": options.log_level,
        "accesslog": "-",
    }
    if options.threads is not None:
        settings["threads"] = options.threads

    class _Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in settings.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)
            if "control_socket_disable" in self.cfg.settings:
                # gunicorn >= 25.1 opens a control socket under ~ by default.
                self.cfg.set("control_socket_disable", True)

        def load(self) -> Any:
            return app

    _Application().run()


def _no_workers(name: str, options: ServerOptions) -> None:
    if options.workers != 1:
        raise UnsupportedOption(f"{name} runs a single process; --workers is not supported")


def _run_waitress(app: Any, options: ServerOptions) -> None:
    import waitress

    _no_workers("waitress", options)
    _sigterm_exits()
    threads = 4 if options.threads is None else options.threads
    waitress.serve(app, host=options.host, port=options.port, threads=threads)


def _run_wsgiref(app: Any, options: ServerOptions) -> None:
    from wsgiref.simple_server import WSGIServer, make_server

    _no_workers("wsgiref", options)
    if options.threads is not None:
        raise UnsupportedOption("wsgiref starts one thread per request; --threads is not supported")

    class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True

    _sigterm_exits()
    with make_server(options.host, options.port, app, server_class=_ThreadingServer) as server:
        print(f"wsgiref serving on http://{options.host}:{options.port}", flush=True)
        server.serve_forever()


@dataclass(frozen=True)
class ServerSpec:
    """One embedded server.

    :param name: the ``--server`` value.
    :param interface: ``"asgi"`` or ``"wsgi"``: what the server hosts.
    :param module: the import name that must be installed.
    :param run: blocks serving the app until the server stops.
    """

    name: str
    interface: Literal["asgi", "wsgi"]
    module: str
    run: Callable[[Any, ServerOptions], None]

    @property
    def installed(self) -> bool:
        """Whether the server's package can be imported here (rule 2)."""
        return importlib.util.find_spec(self.module) is not None


SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        ServerSpec("uvicorn", "asgi", "uvicorn", _run_uvicorn),
        ServerSpec("hypercorn", "asgi", "hypercorn", _run_hypercorn),
        ServerSpec("granian", "asgi", "granian", _run_granian),
        ServerSpec("gunicorn", "wsgi", "gunicorn", _run_gunicorn),
        ServerSpec("waitress", "wsgi", "waitress", _run_waitress),
        ServerSpec("wsgiref", "wsgi", "wsgiref", _run_wsgiref),
    )
}
