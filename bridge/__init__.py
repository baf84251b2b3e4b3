"""bridge: WSGI apps on ASGI servers, ASGI apps on WSGI servers.

The public API is what ``__all__`` lists; every other module-level name is
private even when it has no leading underscore.
"""

from __future__ import annotations

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

__version__ = "0.1.0"

__all__ = [
    "AppProtocolError",
    "BridgeError",
    "ClientDisconnected",
    "LifespanError",
    "LifespanShutdownFailed",
    "LifespanStartupFailed",
    "LifespanUnsupported",
    "ProtocolError",
    "ServerProtocolError",
    "__version__",
]
