"""Serve a WSGI app with the standard library: ``python -m compat_suite.wsgiref_server mod:attr``.

The stdlib reference server (``wsgiref.simple_server``) with one thread per
connection, so a streaming response does not block other clients. On SIGTERM it
stops accepting, then calls the app's ``close()`` if it has one (an ``AsgiToWsgi``
adapter runs lifespan shutdown there).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import socketserver
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, cast
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """``WSGIServer`` handling each connection in its own daemon thread."""

    daemon_threads = True


def load_app(target: str) -> WSGIApplication:
    """Import ``"package.module:attribute"`` and return the attribute.

    :param target: the app's import path.
    :raises ValueError: if ``target`` has no ``:``.
    """
    module_name, sep, attribute = target.partition(":")
    if not sep or not attribute:
        raise ValueError(f"expected 'module:attribute', got {target!r}")
    module = importlib.import_module(module_name)
    return cast("WSGIApplication", getattr(module, attribute))


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target", help="the WSGI app, as module:attribute")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)

    app = load_app(args.target)
    server = make_server(
        args.host,
        args.port,
        app,
        server_class=ThreadingWSGIServer,
        handler_class=WSGIRequestHandler,
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever() to return, so it cannot run on the
        # thread that is inside serve_forever() (this handler's thread).
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"wsgiref serving {args.target} on http://{args.host}:{args.port}", file=sys.stderr)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        close = getattr(app, "close", None)
        if callable(close):
            close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
