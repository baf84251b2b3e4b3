"""bridge: WSGI apps on ASGI servers, ASGI apps on WSGI servers.

The public API is what ``__all__`` lists; every other module-level name is
private even when it has no leading underscore.
"""

from __future__ import annotations

from bridge.asgi_to_wsgi import AsgiToWsgi
from bridge.dispatch import Dispatcher, Mount
from bridge.environ import environ_from_scope
from bridge.errors import (
    AppProtocolError,
    BridgeError,
    ClientDisconnected,
    LifespanError,
    LifespanShutdownFailed,
    LifespanStartupFailed,
    LifespanUnsupported,
    ProtocolError,
    ServerProtocolError,
)
from bridge.lifespan import LifespanManager
from bridge.scope import scope_from_environ
from bridge.wsgi_io import FileWrapper
from bridge.wsgi_to_asgi import WsgiToAsgi

__version__ = "0.1.0"

__all__ = [
    "AppProtocolError",
    "AsgiToWsgi",
    "BridgeError",
    "ClientDisconnected",
    "Dispatcher",
    "FileWrapper",
    "LifespanError",
    "LifespanManager",
    "LifespanShutdownFailed",
    "LifespanStartupFailed",
    "LifespanUnsupported",
    "Mount",
    "ProtocolError",
    "ServerProtocolError",
    "WsgiToAsgi",
    "__version__",
    "environ_from_scope",
    "scope_from_environ",
]
