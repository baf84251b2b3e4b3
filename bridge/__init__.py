"""bridge: WSGI apps on ASGI servers, ASGI apps on WSGI servers.

The public API is what ``__all__`` lists; every other module-level name is
private even when it has no leading underscore.
"""

from __future__ import annotations

from bridge.asgi_to_wsgi import AsgiToWsgi
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

__version__ = "0.1.0"

__all__ = [
    "AppProtocolError",
    "AsgiToWsgi",
    "BridgeError",
    "ClientDisconnected",
    "LifespanError",
    "LifespanManager",
    "LifespanShutdownFailed",
    "LifespanStartupFailed",
    "LifespanUnsupported",
    "ProtocolError",
    "ServerProtocolError",
    "__version__",
    "scope_from_environ",
]
