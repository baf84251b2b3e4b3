"""The smallest ASGI app (with lifespan), and it on a WSGI server as ``hello_asgi:application``.

For benchmarks: the adapter's own cost with no framework in the way.
"""

from __future__ import annotations

import os

from bridge.types import Receive, Scope, Send
from compat_suite.adapters import asgi_to_wsgi
from compat_suite.apps import answer_lifespan

BODY = b"Hello, world!"


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer ``GET /pid`` with the pid, anything else with ``Hello, world!``."""
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope type {scope['type']!r}")
    body = str(os.getpid()).encode() if scope["path"] == "/pid" else BODY
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


application = asgi_to_wsgi(app)
