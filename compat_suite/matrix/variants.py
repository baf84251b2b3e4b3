"""The adapters of the matrix, by name, including each bridge executor and backend.

The matrix's served apps read ``COMPAT_MATRIX_ADAPTER`` when imported (the older
``BRIDGE_ADAPTER`` of :mod:`compat_suite.adapters` only knows the base names):

=================  ===========================================  =========================
name               WSGI app on an ASGI server                   ASGI app on a WSGI server
=================  ===========================================  =========================
bridge-thread      ``WsgiToAsgi(app, executor="thread")``       (none)
bridge-greenlet    ``WsgiToAsgi(app, executor="greenlet")``     (none)
bridge-asyncio     (none)                                       ``AsgiToWsgi(app)``
bridge-trio        (none)                                       ``AsgiToWsgi(app, backend="trio")``
a2wsgi             ``a2wsgi.WSGIMiddleware(app)``               ``a2wsgi.ASGIMiddleware(app)``
asgiref            ``asgiref.wsgi.WsgiToAsgi(app)``             (none: asgiref has no such adapter)
=================  ===========================================  =========================

Also here: the two *mounts* that put an app under a root path (``/mnt``) in
front of the adapter, so a scenario can check ``SCRIPT_NAME`` and ``root_path``
on any server without server options.
"""

from __future__ import annotations

import os
from typing import Any, cast

from bridge.types import ASGIApp, Receive, Scope, Send, WSGIApp
from compat_suite.adapters import asgi_to_wsgi, wsgi_to_asgi

__all__ = [
    "ASGI_IN_WSGI",
    "MATRIX_ADAPTER_ENV",
    "MOUNT_PREFIX",
    "WSGI_IN_ASGI",
    "bridge_executor_available",
    "mounted_asgi",
    "mounted_wsgi",
    "wrap_asgi_app",
    "wrap_wsgi_app",
]

MATRIX_ADAPTER_ENV = "COMPAT_MATRIX_ADAPTER"
#: The root path the mounts serve the app under.
MOUNT_PREFIX = "/mnt"

#: Adapters that serve a WSGI app on an ASGI server, in report order.
WSGI_IN_ASGI: tuple[str, ...] = ("bridge-thread", "bridge-greenlet", "a2wsgi", "asgiref")
#: Adapters that serve an ASGI app on a WSGI server, in report order (asgiref: no such adapter).
ASGI_IN_WSGI: tuple[str, ...] = ("bridge-asyncio", "bridge-trio", "a2wsgi", "asgiref")


def _selected() -> str:
    name = os.environ.get(MATRIX_ADAPTER_ENV)
    if not name:
        raise LookupError(f"{MATRIX_ADAPTER_ENV} is not set; the matrix runner sets it")
    return name


def bridge_executor_available(executor: str) -> bool:
    """Whether this ``bridge`` build accepts ``WsgiToAsgi(app, executor=executor)``."""
    import bridge

    def app(environ: Any, start_response: Any) -> list[bytes]:
        return []

    try:
        bridge.WsgiToAsgi(app, executor=executor)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


def wrap_wsgi_app(app: WSGIApp, adapter: str | None = None) -> ASGIApp:
    """``app`` behind the named WSGI-in-ASGI adapter (default: ``COMPAT_MATRIX_ADAPTER``).

    :raises LookupError: for a name this direction does not have.
    """
    name = adapter or _selected()
    if name.startswith("bridge-"):
        import bridge

        executor = name.removeprefix("bridge-")
        return bridge.WsgiToAsgi(app, executor=executor)  # type: ignore[arg-type]
    if name in ("a2wsgi", "asgiref"):
        return wsgi_to_asgi(app, name)
    raise LookupError(f"no WSGI-in-ASGI adapter named {name!r}; expected one of {WSGI_IN_ASGI}")


def wrap_asgi_app(app: ASGIApp, adapter: str | None = None) -> WSGIApp:
    """``app`` behind the named ASGI-in-WSGI adapter (default: ``COMPAT_MATRIX_ADAPTER``).

    :raises LookupError: for a name this direction does not have.
    """
    name = adapter or _selected()
    if name in ("bridge-asyncio", "bridge-trio"):
        import bridge

        backend = name.removeprefix("bridge-")
        return bridge.AsgiToWsgi(app, backend=backend)  # type: ignore[arg-type]
    if name == "a2wsgi":
        return asgi_to_wsgi(app, name)
    raise LookupError(f"no ASGI-in-WSGI adapter named {name!r}; expected one of {ASGI_IN_WSGI}")


def mounted_asgi(app: ASGIApp) -> ASGIApp:
    """An ASGI app that serves ``app`` with ``root_path="/mnt"`` for paths under ``/mnt``.

    ASGI ``path`` includes ``root_path`` (SPEC A5), so only ``root_path`` changes.
    """

    async def mount(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (
            path == MOUNT_PREFIX or path.startswith(MOUNT_PREFIX + "/")
        ):
            scope = {**scope, "root_path": scope.get("root_path", "") + MOUNT_PREFIX}
        await app(scope, receive, send)

    return mount


def mounted_wsgi(app: WSGIApp) -> WSGIApp:
    """A WSGI app that moves ``/mnt`` from ``PATH_INFO`` to ``SCRIPT_NAME`` before ``app``.

    Whatever else ``app`` has (``close()`` for lifespan shutdown) stays reachable.
    """

    class Mount:
        def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
            path = environ.get("PATH_INFO", "")
            if path == MOUNT_PREFIX or path.startswith(MOUNT_PREFIX + "/"):
                environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + MOUNT_PREFIX
                environ["PATH_INFO"] = path[len(MOUNT_PREFIX) :]
            return app(environ, start_response)

        def close(self) -> None:
            close = getattr(app, "close", None)
            if callable(close):
                close()

    return cast("WSGIApp", Mount())
