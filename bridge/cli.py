"""The command line: ``python -m bridge serve module:app`` and ``python -m bridge inspect``.

Rules:
1. ``TARGET`` is ``module:attr`` or ``path/to/file.py:attr``; ``attr`` may be
   dotted (``module:holder.app``) and defaults to ``app``. The current
   directory (``--app-dir``) goes first on ``sys.path``, as servers do.
   ``--factory`` calls the loaded object with no arguments to get the app.
2. The app's interface is detected (:mod:`bridge.detect`) unless
   ``--interface`` says it, then bridged to what the server hosts: a WSGI app
   on an ASGI host runs in :class:`~bridge.WsgiToAsgi` (``--threads``,
   ``--executor``), an ASGI app on a WSGI host in :class:`~bridge.AsgiToWsgi`,
   an ASGI 2 app on an ASGI host becomes ASGI 3 (F2).
3. Errors the user can fix (server not installed, app not importable,
   interface unknown, option unsupported) are one line on stderr and exit
   status 2; no traceback. The app's own exceptions at import time are shown
   as ``ExceptionType: message`` on that line too (``--log-level debug`` logs
   the traceback).
4. For worker processes that import their app (see :mod:`bridge.embedded`),
   the serve spec travels in the ``BRIDGE_SERVE_SPEC`` environment variable
   and :func:`served_app` rebuilds the app from it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from bridge.asgi_to_wsgi import AsgiToWsgi
from bridge.detect import InterfaceInfo, detect_interface, probe_lifespan, to_asgi3
from bridge.embedded import SERVERS, ServerOptions, UnsupportedOption
from bridge.errors import LifespanError
from bridge.wsgi_to_asgi import WsgiToAsgi

__all__ = ["AppLoadError", "build_app", "load_app", "main", "served_app"]

logger = logging.getLogger("bridge.cli")

SPEC_VARIABLE = "BRIDGE_SERVE_SPEC"
INSTALL_HINT = "pip install 'asgi-wsgi-bridge[servers]'"
_EXIT_USAGE = 2


class AppLoadError(Exception):
    """The target could not be imported, found or built."""


def _import_module(module_name: str, app_dir: str) -> Any:
    if app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    if module_name.endswith(".py") or os.sep in module_name:
        path = Path(module_name).resolve()
        if not path.is_file():
            raise AppLoadError(f"no such file: {module_name}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise AppLoadError(f"cannot import {module_name} as Python code")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(module_name)


def load_app(target: str, *, factory: bool = False, app_dir: str = ".") -> Any:
    """Import ``target`` (rule 1) and return the application object.

    :param target: ``module:attr`` or ``path/to/file.py:attr``.
    :param factory: call the object with no arguments and return the result.
    :param app_dir: prepended to ``sys.path`` before importing.
    :raises AppLoadError: if the module or attribute is missing, importing it
        raised, or the factory raised.
    """
    module_name, _, attr = target.partition(":")
    attr = attr or "app"
    try:
        module = _import_module(module_name, str(Path(app_dir).resolve()))
    except AppLoadError:
        raise
    except Exception as exc:
        logger.debug("importing %r failed", module_name, exc_info=True)
        raise AppLoadError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(f"module {module_name!r} has no attribute {attr!r}") from None
    if factory:
        try:
            obj = obj()
        except Exception as exc:
            logger.debug("factory %r failed", target, exc_info=True)
            raise AppLoadError(f"factory {target!r} raised {type(exc).__name__}: {exc}") from exc
    return obj


def build_app(
    app: Any,
    info: InterfaceInfo,
    host_interface: str,
    *,
    threads: int | None = None,
    executor: str = "thread",
) -> Any:
    """Bridge ``app`` to what the server hosts (rule 2).

    :param app: the loaded application.
    :param info: its detected interface.
    :param host_interface: ``"asgi"`` or ``"wsgi"``.
    :param threads: ``WsgiToAsgi(max_threads=...)`` for a WSGI app on an ASGI host.
    :param executor: ``WsgiToAsgi(executor=...)``.
    :raises ValueError: for options the adapter rejects.
    """
    if host_interface == "asgi":
        if info.interface != "wsgi":
            return to_asgi3(app, info)
        options: dict[str, Any] = {"max_threads": threads, "executor": executor}
        return WsgiToAsgi(app, **options)
    if info.interface == "wsgi":
        return app
    return AsgiToWsgi(app, asgi_version=info.asgi_version or "auto")


def served_app() -> Any:
    """Rebuild the served app in a worker process from ``BRIDGE_SERVE_SPEC`` (rule 4).

    :raises RuntimeError: when the variable is not set (not started by ``bridge serve``).
    """
    raw = os.environ.get(SPEC_VARIABLE)
    if raw is None:
        raise RuntimeError(f"{SPEC_VARIABLE} is not set; this is for `bridge serve` workers")
    spec = json.loads(raw)
    app = load_app(spec["target"], factory=spec["factory"], app_dir=spec["app_dir"])
    info = detect_interface(app, spec["interface"])
    return build_app(app, info, spec["host"], threads=spec["threads"], executor=spec["executor"])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridge", description="Serve or inspect a WSGI or ASGI app, bridging as needed."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("target", help="module:app or path/to/file.py:app")
        sub.add_argument("--factory", action="store_true", help="call TARGET to get the app")
        sub.add_argument(
            "--interface",
            choices=["auto", "wsgi", "asgi3", "asgi2"],
            default="auto",
            help="skip interface detection",
        )
        sub.add_argument("--app-dir", default=".", help="put this directory on sys.path")
        sub.add_argument(
            "--log-level",
            choices=["critical", "error", "warning", "info", "debug"],
            default="info",
        )

    serve = commands.add_parser("serve", help="serve the app on an embedded server")
    common(serve)
    serve.add_argument("--server", choices=sorted(SERVERS), default="uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="worker processes")
    serve.add_argument(
        "--threads", type=int, default=None, help="WsgiToAsgi threads, or WSGI server threads"
    )
    serve.add_argument("--executor", choices=["thread", "greenlet"], default="thread")

    inspect = commands.add_parser("inspect", help="print the detected interface and lifespan")
    common(inspect)
    inspect.add_argument(
        "--lifespan-timeout", type=float, default=5.0, help="seconds for the lifespan probe"
    )
    inspect.add_argument("--no-lifespan", action="store_true", help="do not run the app's lifespan")
    return parser


def _fail(message: str) -> int:
    print(f"bridge: error: {message}", file=sys.stderr, flush=True)
    return _EXIT_USAGE


def _serve(args: argparse.Namespace) -> int:
    spec = SERVERS[args.server]
    if not spec.installed:
        return _fail(f"server {spec.name!r} is not installed; install it with: {INSTALL_HINT}")
    try:
        app = load_app(args.target, factory=args.factory, app_dir=args.app_dir)
        info = detect_interface(app, args.interface)
        served = build_app(app, info, spec.interface, threads=args.threads, executor=args.executor)
    except (AppLoadError, TypeError, ValueError) as exc:
        return _fail(str(exc))
    os.environ[SPEC_VARIABLE] = json.dumps(
        {
            "target": args.target,
            "factory": args.factory,
            "app_dir": str(Path(args.app_dir).resolve()),
            "interface": info.interface,
            "host": spec.interface,
            "threads": args.threads,
            "executor": args.executor,
        }
    )
    logger.info(
        "serving %s (%s: %s) on %s at http://%s:%d",
        args.target,
        info.interface,
        info.reason,
        spec.name,
        args.host,
        args.port,
    )
    options = ServerOptions(
        host=args.host,
        port=args.port,
        workers=args.workers,
        threads=args.threads if spec.interface == "wsgi" else None,
        log_level=args.log_level,
    )
    # A single-process WSGI host runs an ASGI app's lifespan before listening,
    # so a failed startup stops the command; forking hosts run it per worker.
    eager = isinstance(served, AsgiToWsgi) and spec.name in ("waitress", "wsgiref")
    try:
        with served if eager else contextlib.nullcontext():
            spec.run(served, options)
    except UnsupportedOption as exc:
        return _fail(str(exc))
    except LifespanError as exc:
        print(f"bridge: lifespan: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def _inspect(args: argparse.Namespace) -> int:
    try:
        app = load_app(args.target, factory=args.factory, app_dir=args.app_dir)
        info = detect_interface(app, args.interface)
    except (AppLoadError, TypeError, ValueError) as exc:
        return _fail(str(exc))
    print(f"target: {args.target}")
    print(f"object: {type(app).__module__}.{type(app).__qualname__}")
    print(f"interface: {info.interface} ({info.reason})")
    print(f"asgi version: {info.asgi_version or '-'}")
    if info.asgi_version is None:
        lifespan = "none (WSGI apps have no lifespan)"
    elif args.no_lifespan:
        lifespan = "not probed"
    else:
        try:
            supported = anyio.run(
                lambda: probe_lifespan(app, timeout=args.lifespan_timeout, override=info.interface)
            )
        except LifespanError as exc:
            print(f"lifespan: failed: {exc}")
            return 1
        lifespan = "supported" if supported else "unsupported"
    print(f"lifespan: {lifespan}")
    print(f"default server: uvicorn{' (through WsgiToAsgi)' if info.interface == 'wsgi' else ''}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    :param argv: the arguments after the program name; ``sys.argv[1:]`` by default.
    """
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "serve":
        return _serve(args)
    return _inspect(args)
