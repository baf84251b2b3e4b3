"""Which bridge wraps the apps: ours or a peer, chosen by name.

The served apps (``compat_suite.apps``) read ``BRIDGE_ADAPTER`` when they are
imported, so one server command line serves the same app through any adapter:

===============  ================================================  ==============================
name             WSGI app on an ASGI server                        ASGI app on a WSGI server
===============  ================================================  ==============================
bridge           ``bridge.WsgiToAsgi(app)`` (thread executor)      ``bridge.AsgiToWsgi(app)``
bridge-greenlet  ``bridge.WsgiToAsgi(app, executor="greenlet")``   (none)
a2wsgi           ``a2wsgi.WSGIMiddleware(app)``                    ``a2wsgi.ASGIMiddleware(app)``
asgiref          ``asgiref.wsgi.WsgiToAsgi(app)``                  (none)
===============  ================================================  ==============================

Imports are lazy: selecting a peer never imports ``bridge``'s adapters, and the
other way round.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any, cast

from bridge.types import ASGIApp, WSGIApp

__all__ = [
    "ADAPTER_ENV",
    "ASGI_IN_WSGI_ADAPTERS",
    "DEFAULT_ADAPTER",
    "WSGI_IN_ASGI_ADAPTERS",
    "UnknownAdapter",
    "asgi_to_wsgi",
    "greenlet_wsgi_to_asgi",
    "selected_adapter",
    "wsgi_to_asgi",
]

#: The environment variable the apps read at import time.
ADAPTER_ENV = "BRIDGE_ADAPTER"
DEFAULT_ADAPTER = "bridge"

# name -> (module, class): the class takes the inner app as its only argument.
_WSGI_IN_ASGI: dict[str, tuple[str, str]] = {
    "bridge": ("bridge", "WsgiToAsgi"),
    "bridge-greenlet": ("compat_suite.adapters", "greenlet_wsgi_to_asgi"),
    "a2wsgi": ("a2wsgi", "WSGIMiddleware"),
    "asgiref": ("asgiref.wsgi", "WsgiToAsgi"),
}
_ASGI_IN_WSGI: dict[str, tuple[str, str]] = {
    "bridge": ("bridge", "AsgiToWsgi"),
    "a2wsgi": ("a2wsgi", "ASGIMiddleware"),
}

#: Adapters that serve a WSGI app on an ASGI server.
WSGI_IN_ASGI_ADAPTERS: tuple[str, ...] = tuple(_WSGI_IN_ASGI)
#: Adapters that serve an ASGI app on a WSGI server.
ASGI_IN_WSGI_ADAPTERS: tuple[str, ...] = tuple(_ASGI_IN_WSGI)


class UnknownAdapter(LookupError):
    """The adapter name is not one this direction knows."""


def selected_adapter() -> str:
    """The adapter named by ``BRIDGE_ADAPTER``, ``"bridge"`` when unset or empty."""
    return os.environ.get(ADAPTER_ENV) or DEFAULT_ADAPTER


def _adapter_factory(
    table: dict[str, tuple[str, str]], name: str, direction: str
) -> Callable[[Any], object]:
    try:
        module_name, class_name = table[name]
    except KeyError:
        raise UnknownAdapter(
            f"no {direction} adapter named {name!r}; expected one of {sorted(table)}"
        ) from None
    factory: Callable[[Any], object] = getattr(importlib.import_module(module_name), class_name)
    return factory


def greenlet_wsgi_to_asgi(app: WSGIApp) -> ASGIApp:
    """``bridge.WsgiToAsgi(app, executor="greenlet")``: the ``bridge-greenlet`` entry."""
    from bridge import WsgiToAsgi  # lazy, as for every entry (see the module's docstring)

    return WsgiToAsgi(app, executor="greenlet")


def wsgi_to_asgi(app: WSGIApp, adapter: str | None = None) -> ASGIApp:
    """Wrap a WSGI app so an ASGI server can serve it.

    :param app: the WSGI application.
    :param adapter: an entry of :data:`WSGI_IN_ASGI_ADAPTERS`; defaults to
        :func:`selected_adapter`.
    :raises UnknownAdapter: for a name this direction does not have.
    """
    name = adapter or selected_adapter()
    factory = _adapter_factory(_WSGI_IN_ASGI, name, "WSGI-in-ASGI")
    return cast("ASGIApp", factory(app))


def asgi_to_wsgi(app: ASGIApp, adapter: str | None = None) -> WSGIApp:
    """Wrap an ASGI app so a WSGI server can serve it.

    :param app: the ASGI application.
    :param adapter: an entry of :data:`ASGI_IN_WSGI_ADAPTERS`; defaults to
        :func:`selected_adapter`.
    :raises UnknownAdapter: for a name this direction does not have.
    """
    name = adapter or selected_adapter()
    factory = _adapter_factory(_ASGI_IN_WSGI, name, "ASGI-in-WSGI")
    return cast("WSGIApp", factory(app))
