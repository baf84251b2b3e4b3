"""The bridge's own exceptions.

Exceptions raised *by the wrapped application* are never wrapped: they
propagate unchanged once the adapter has done what the specs require (a 500
before the response started, an aborted connection after). The classes here
describe what *we* detect::

    BridgeError
    ├── ProtocolError                 a peer broke WSGI or ASGI rules
    │   ├── AppProtocolError          ... the wrapped application (-> 500)
    │   └── ServerProtocolError       ... the server or the client request (-> 4xx)
    ├── LifespanError                 ASGI lifespan did not complete
    │   ├── LifespanStartupFailed     startup failed, raised or timed out
    │   ├── LifespanShutdownFailed    shutdown failed, raised or timed out
    │   └── LifespanUnsupported       the app does not speak lifespan, and it was required
    └── ClientDisconnected (OSError)  the client went away mid-request

``ClientDisconnected`` is also an :class:`OSError` because both specs tell code
to expect one: PEP 3333 servers raise ``OSError`` from a dead socket, and ASGI
www §Disconnected Client (spec 2.4) has ``send()`` raise a subclass of
``OSError`` once the client is gone.
"""

from __future__ import annotations

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
]


class BridgeError(Exception):
    """Base class of every exception the bridge raises itself."""


class ProtocolError(BridgeError):
    """A peer broke the WSGI or ASGI protocol.

    :param message: what was seen, and what was expected instead.
    :param status_hint: the HTTP status a response should carry because of it.
    """

    status_hint: int = 500

    def __init__(self, message: str, *, status_hint: int | None = None) -> None:
        super().__init__(message)
        if status_hint is not None:
            self.status_hint = status_hint


class AppProtocolError(ProtocolError):
    """The wrapped application broke the protocol (bad status, headers, messages, order)."""

    status_hint = 500


class ServerProtocolError(ProtocolError):
    """The server handed over something malformed, or the request itself is invalid.

    ``status_hint`` is 400 unless a more precise 4xx applies (413 for a body
    over ``max_body_size``).
    """

    status_hint = 400


class LifespanError(BridgeError):
    """ASGI lifespan (asgiref specs/lifespan.rst) did not complete as required."""


class LifespanStartupFailed(LifespanError):
    """``lifespan.startup.failed`` was sent, the app raised, or startup timed out."""


class LifespanShutdownFailed(LifespanError):
    """``lifespan.shutdown.failed`` was sent, the app raised, or shutdown timed out."""


class LifespanUnsupported(LifespanError):
    """The application does not support the lifespan protocol, and lifespan was required."""


class ClientDisconnected(BridgeError, OSError):
    """The client disconnected before the exchange finished."""
