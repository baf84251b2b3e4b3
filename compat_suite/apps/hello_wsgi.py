"""The smallest PEP 3333 app, and it on an ASGI server as ``hello_wsgi:application``.

For benchmarks: the adapter's own cost with no framework in the way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from bridge.types import Environ, StartResponse
from compat_suite.adapters import wsgi_to_asgi

BODY = b"Hello, world!"


def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Answer ``GET /pid`` with the pid, anything else with ``Hello, world!``."""
    body = str(os.getpid()).encode() if environ.get("PATH_INFO") == "/pid" else BODY
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]


application = wsgi_to_asgi(app)
