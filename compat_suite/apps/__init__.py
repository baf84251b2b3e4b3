"""Real framework apps served in the end-to-end tests, importable as ``module:attr``.

Every module has ``app`` (the framework's own app, in its own protocol) and
``application`` (that app wrapped by the adapter ``BRIDGE_ADAPTER`` names, for
servers of the other protocol; see :mod:`compat_suite.adapters`):

- ``flask_app``, ``django_app``, ``hello_wsgi``: WSGI apps; ``application`` is ASGI.
- ``fastapi_app``, ``hello_asgi``: ASGI apps; ``application`` is WSGI.

All of them answer ``GET /pid`` with the serving process's id, which the memory
checks use to find the worker.
"""

import hashlib

from bridge.types import Receive, Send

#: Chunk size of the streamed downloads and of the upload readers.
CHUNK_SIZE = 64 * 1024


def size_and_digest(data: bytes) -> tuple[int, str]:
    """``(len(data), sha256 hex digest)``: how the /form endpoints report an uploaded file."""
    return len(data), hashlib.sha256(data).hexdigest()


async def answer_lifespan(receive: Receive, send: Send) -> None:
    """Run an ASGI ``lifespan`` scope for an app with nothing to set up or tear down.

    ASGI lifespan §Scope: startup and shutdown both succeed; returns after shutdown.
    """
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


#: The adapted app of each module, by short name, as servers take it ("module:attr").
#: flask, django and hello-wsgi run on ASGI servers; fastapi and hello-asgi on WSGI ones.
TARGETS = {
    "flask": "compat_suite.apps.flask_app:application",
    "django": "compat_suite.apps.django_app:application",
    "hello-wsgi": "compat_suite.apps.hello_wsgi:application",
    "fastapi": "compat_suite.apps.fastapi_app:application",
    "hello-asgi": "compat_suite.apps.hello_asgi:application",
}
