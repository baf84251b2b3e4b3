"""Tell WSGI, ASGI 3 and ASGI 2 applications apart (SPEC F1-F4), and probe lifespan.

Rules (first match wins; :func:`detect_interface`):
1. An explicit override always wins: detection is a heuristic, the user knows.
2. asgiref's hints: ``_asgi_single_callable`` → ASGI 3, ``_asgi_double_callable``
   → ASGI 2 (F3, asgiref ``is_double_callable``).
3. A coroutine function (``asgiref.sync.iscoroutinefunction``, which honours
   ``markcoroutinefunction`` and sees through ``functools.partial``), or an
   instance whose ``__call__`` is one → ASGI 3 (F1, B21).
4. A class: calling it builds the instance. ``Cls(environ, start_response)``
   (two positional parameters, PEP 3333's "class as application") → WSGI;
   ``Cls(scope)`` → ASGI 2 (F1 "app(scope) returning an instance").
5. Any other callable, by its positional parameters: two → WSGI
   (``app(environ, start_response)``, PEP 3333; SPEC G "2 positional
   arguments"); one → ASGI 2 (a closure returning the instance); three → ASGI 3
   (a sync function or decorator returning a coroutine, F3).
6. Anything else (``*args`` only, no signature) is ambiguous: :class:`TypeError`
   asking for an override. We never guess silently.

``functools.partial`` needs no special case: ``inspect.signature`` reports the
parameters still to be supplied, and rules 3-4 look at ``partial.func``.
"""

from __future__ import annotations

import functools
import inspect
import logging
from dataclasses import dataclass
from typing import Any, Literal

from asgiref.sync import iscoroutinefunction

from bridge.errors import LifespanStartupFailed
from bridge.lifespan import AsgiVersion, LifespanManager, as_asgi3
from bridge.types import ASGIApp, Receive, Scope, Send

__all__ = ["Interface", "InterfaceInfo", "detect_interface", "probe_lifespan", "to_asgi3"]

logger = logging.getLogger("bridge.detect")

Interface = Literal["wsgi", "asgi3", "asgi2"]
_INTERFACES: tuple[Interface, ...] = ("wsgi", "asgi3", "asgi2")


@dataclass(frozen=True)
class InterfaceInfo:
    """What :func:`detect_interface` found, with the reason (for ``bridge inspect``).

    :param interface: ``"wsgi"``, ``"asgi3"`` or ``"asgi2"``.
    :param reason: which rule decided, in words.
    """

    interface: Interface
    reason: str

    @property
    def asgi_version(self) -> AsgiVersion | None:
        """``"3"`` or ``"2"`` for ASGI apps, ``None`` for WSGI apps."""
        if self.interface == "wsgi":
            return None
        return "3" if self.interface == "asgi3" else "2"


def _positional_count(obj: Any) -> int | None:
    """The number of positional parameters ``obj`` takes, or ``None`` if unknowable."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    count = 0
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return None  # *args: any count fits, so it tells us nothing
        if parameter.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            count += 1
    return count


def _innermost(app: Any) -> Any:
    while isinstance(app, functools.partial):
        app = app.func
    return app


def _hint(app: Any) -> InterfaceInfo | None:
    for obj in (app, _innermost(app)):
        if getattr(obj, "_asgi_single_callable", False):
            return InterfaceInfo("asgi3", "asgiref hint _asgi_single_callable")
        if getattr(obj, "_asgi_double_callable", False):
            return InterfaceInfo("asgi2", "asgiref hint _asgi_double_callable")
    return None


def detect_interface(app: Any, override: str | None = None) -> InterfaceInfo:
    """Detect whether ``app`` is a WSGI, ASGI 3 or ASGI 2 application.

    :param app: the application object.
    :param override: ``"wsgi"``, ``"asgi3"`` or ``"asgi2"`` to skip detection
        (``None`` or ``"auto"`` to detect).
    :raises ValueError: for an unknown override.
    :raises TypeError: if ``app`` is not callable, or its interface is ambiguous.
    """
    if override not in (None, "auto"):
        if override not in _INTERFACES:
            raise ValueError(
                f"interface must be 'auto', 'wsgi', 'asgi3' or 'asgi2', not {override!r}"
            )
        return InterfaceInfo(override, "explicit override")
    if not callable(app):
        raise TypeError(f"{app!r} is not callable, so it is neither a WSGI nor an ASGI app")
    hinted = _hint(app)
    if hinted is not None:
        return hinted
    inner = _innermost(app)
    if iscoroutinefunction(app) or iscoroutinefunction(inner):
        return InterfaceInfo("asgi3", "coroutine function")
    if not inspect.isclass(inner) and iscoroutinefunction(getattr(inner, "__call__", None)):  # noqa: B004
        return InterfaceInfo("asgi3", "instance with an async __call__")
    count = _positional_count(app)
    if inspect.isclass(inner):
        if count == 2:
            return InterfaceInfo("wsgi", "class constructed as Cls(environ, start_response)")
        if count == 1:
            return InterfaceInfo("asgi2", "class constructed as Cls(scope)")
    elif count == 2:
        return InterfaceInfo("wsgi", "sync callable taking (environ, start_response)")
    elif count == 1:
        return InterfaceInfo("asgi2", "sync callable taking (scope)")
    elif count == 3:
        return InterfaceInfo("asgi3", "sync callable taking (scope, receive, send)")
    raise TypeError(
        f"cannot tell whether {app!r} is a WSGI or an ASGI app "
        f"(positional parameters: {'unknown' if count is None else count}); "
        "pass the interface explicitly ('wsgi', 'asgi3' or 'asgi2')"
    )


class _Asgi2OnAsgi3Host:
    """An ASGI 2 app as the ASGI 3 callable a host calls with its own scopes.

    The host writes ``asgi.version`` ``"3.0"``, since it calls an ASGI 3
    callable; the app is told ``"2.0"`` (SPEC F4, ASGI main §Legacy
    Applications), as it would be by uvicorn serving it directly. The scope is
    copied, not changed: it is the host's.
    """

    __slots__ = ("_call", "app")

    def __init__(self, app: Any) -> None:
        self.app = app
        self._call = as_asgi3(app, "2")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        asgi = dict(scope.get("asgi") or {})
        asgi["version"] = "2.0"
        await self._call({**scope, "asgi": asgi}, receive, send)


def to_asgi3(app: Any, info: InterfaceInfo) -> ASGIApp:
    """Return the ASGI 3 callable for an ASGI app detected as ``info`` (F2).

    An ASGI 2 app is wrapped so that its scopes say ``asgi.version`` ``"2.0"``
    whatever the host wrote (F4); an ASGI 3 app is returned as it is.

    :param app: the ASGI 2 or 3 application.
    :param info: its detected interface.
    :raises ValueError: if ``info`` says WSGI (wrap it in ``WsgiToAsgi`` instead).
    """
    version = info.asgi_version
    if version is None:
        raise ValueError("a WSGI app has no ASGI callable; wrap it in WsgiToAsgi")
    if version == "2":
        return _Asgi2OnAsgi3Host(app)
    return as_asgi3(app, version)


async def probe_lifespan(app: Any, *, timeout: float = 5.0, override: str | None = None) -> bool:
    """Run an ASGI app's lifespan startup and shutdown once: does it support lifespan?

    This *runs* the app's startup code (database connections, migrations...),
    exactly as a server would, then shuts it down. WSGI apps have no lifespan.

    :param app: the application.
    :param timeout: seconds allowed for startup and for shutdown each (E8).
    :param override: see :func:`detect_interface`.
    :returns: ``True`` if startup completed, ``False`` if the app does not speak
        lifespan (it raised on the lifespan scope or returned, E5/E9), or is WSGI.
    :raises LifespanStartupFailed: on ``lifespan.startup.failed`` or a timeout.
    :raises LifespanShutdownFailed: if shutdown failed after a complete startup.
    """
    info = detect_interface(app, override)
    if info.asgi_version is None:
        return False
    manager = LifespanManager(
        app, startup_timeout=timeout, shutdown_timeout=timeout, asgi_version=info.asgi_version
    )
    try:
        async with manager:
            pass
    except LifespanStartupFailed:
        logger.debug("lifespan startup failed while probing %r", app)
        raise
    return bool(manager.supported)
