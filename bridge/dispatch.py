"""``Dispatcher``: several WSGI and ASGI apps behind one ASGI app, mounted by path prefix.

Rules:
1. Routing (``http`` and ``websocket`` scopes). The path is matched relative to
   the dispatcher's own ``root_path``; the longest prefix wins, on a segment
   boundary ("/api" matches "/api" and "/api/x", never "/apix"). The child gets
   a copy of the scope whose ``root_path`` grows by the prefix while ``path``
   (and ``raw_path``) keep the full path (ASGI www §HTTP "path ... root_path";
   SPEC A4/A5), so a WSGI child sees ``SCRIPT_NAME`` = prefix. Anything that
   matches no mount goes to ``fallback``, or gets a 404 (a 403 close for a
   websocket) without one.
2. WSGI children are detected (:mod:`bridge.detect`) and wrapped once in
   :class:`~bridge.WsgiToAsgi` with ``wsgi_options``; ASGI 2 children become
   ASGI 3 (F2).
3. Lifespan: every child runs its own lifespan through a
   :class:`~bridge.LifespanManager` with its own ``state`` dict; a request gets a
   shallow copy of its child's state only (C10, E10), never another child's.
   Children start in declaration order (fallback last) and stop in reverse. A
   child that fails startup fails the dispatcher's startup with
   ``"mount '/api': <message>"`` (E4), after stopping those already started.
   A child without lifespan support is served without state (E5).
4. Strangler-fig fall-through (``Mount(..., fallthrough_on_404=True)``): the
   response start decides. A 404 start while the request body is still
   replayable is swallowed with everything the child sends after it; from then
   on the child's ``receive()`` reports ``http.disconnect``; once it returns, the
   fallback serves the request with the recorded body chunks replayed, then
   the rest read from the server. Any other status passes through unchanged.
   The recording is bounded by ``fallthrough_body_limit`` (default 1 MiB, in
   memory): a request whose ``Content-Length`` exceeds it, or whose body turns
   out larger, is answered by the mounted app alone, 404 included.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.detect import detect_interface, to_asgi3
from bridge.errors import LifespanError, ServerProtocolError
from bridge.fallthrough import FallThrough
from bridge.lifespan import LifespanManager
from bridge.types import ASGIApp, Receive, Scope, Send
from bridge.wsgi_to_asgi import WsgiToAsgi

__all__ = ["Dispatcher", "Mount"]

logger = logging.getLogger("bridge.dispatch")

#: Default bound on the request body recorded for a fall-through replay.
FALLTHROUGH_BODY_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class Mount:
    """One app mounted at a path prefix of a :class:`Dispatcher`.

    :param prefix: ``"/api"``-style: starts with ``/``, no trailing ``/``
        (one is stripped), not ``"/"`` itself (use ``fallback=``).
    :param app: a WSGI, ASGI 3 or ASGI 2 application.
    :param fallthrough_on_404: send requests this app answers with 404 to the
        dispatcher's fallback instead (module docstring, rule 4).
    :param interface: ``"wsgi"``, ``"asgi3"`` or ``"asgi2"`` to skip detection.
    """

    prefix: str
    app: Any
    fallthrough_on_404: bool = False
    interface: str | None = None


class _Child:
    """A mount at run time: its ASGI 3 callable and its lifespan state."""

    __slots__ = ("app", "fallthrough", "label", "prefix", "state")

    def __init__(self, label: str, prefix: str, app: ASGIApp, fallthrough: bool) -> None:
        self.label = label
        self.prefix = prefix
        self.app = app
        self.fallthrough = fallthrough
        self.state: dict[str, Any] | None = None  # set by a supported lifespan startup

    def scope_for(self, scope: Scope, root_path: str, lifespan_ran: bool) -> Scope:
        child = dict(scope)
        child["root_path"] = root_path + self.prefix
        if lifespan_ran:
            # Rule 3: this child's state only, as a shallow copy (C10); no
            # state at all for a child without lifespan support.
            if self.state is None:
                child.pop("state", None)
            else:
                child["state"] = dict(self.state)
        return child


def _normalise_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise ValueError(f"a mount prefix must be a str starting with '/', not {prefix!r}")
    stripped = prefix.rstrip("/")
    if not stripped:
        raise ValueError("'/' cannot be mounted: pass the catch-all app as fallback=")
    return stripped


class Dispatcher:
    """An ASGI app that routes requests to WSGI and ASGI apps by path prefix.

    ::

        app = Dispatcher({"/api": fastapi_app, "/admin": django_wsgi}, fallback=flask_app)
        app = Dispatcher([Mount("/api", fastapi_app, fallthrough_on_404=True)],
                         fallback=flask_app)

    :param mounts: ``{prefix: app}`` or an iterable of :class:`Mount`.
    :param fallback: the app for requests no mount matches, and for
        fall-through 404s (typically the legacy app).
    :param fallback_interface: skips detection for ``fallback``.
    :param wsgi_options: keyword arguments for each :class:`~bridge.WsgiToAsgi`
        wrapping a WSGI child (``max_threads``, ``max_body_size``...).
    :param fallthrough_body_limit: bytes of request body recorded for a
        fall-through replay (module docstring, rule 4).
    :param startup_timeout: seconds each child may take for lifespan startup.
    :param shutdown_timeout: seconds each child may take for lifespan shutdown.
    :raises ValueError: for a bad or duplicate prefix, a fall-through mount
        without a fallback, or a negative limit.
    :raises TypeError: if a child's interface cannot be detected.
    """

    def __init__(
        self,
        mounts: Mapping[str, Any] | Iterable[Mount] = (),
        *,
        fallback: Any = None,
        fallback_interface: str | None = None,
        wsgi_options: Mapping[str, Any] | None = None,
        fallthrough_body_limit: int = FALLTHROUGH_BODY_LIMIT,
        startup_timeout: float = 60.0,
        shutdown_timeout: float = 60.0,
    ) -> None:
        if fallthrough_body_limit < 0:
            raise ValueError(f"fallthrough_body_limit must be >= 0, got {fallthrough_body_limit}")
        if isinstance(mounts, Mapping):
            mounts = [Mount(prefix, app) for prefix, app in mounts.items()]
        self.wsgi_options = dict(wsgi_options or {})
        self.fallthrough_body_limit = fallthrough_body_limit
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        children: list[_Child] = []
        seen: set[str] = set()
        for mount in mounts:
            prefix = _normalise_prefix(mount.prefix)
            if prefix in seen:
                raise ValueError(f"prefix {prefix!r} is mounted twice")
            seen.add(prefix)
            app = self._as_asgi(mount.app, mount.interface)
            children.append(_Child(f"mount {prefix!r}", prefix, app, mount.fallthrough_on_404))
        self.fallback: _Child | None = None
        if fallback is not None:
            self.fallback = _Child(
                "fallback", "", self._as_asgi(fallback, fallback_interface), False
            )
        elif any(child.fallthrough for child in children):
            raise ValueError("fallthrough_on_404 needs a fallback app to fall through to")
        # Longest prefix first, so the first match is the longest (rule 1).
        self._routes = sorted(children, key=lambda child: len(child.prefix), reverse=True)
        self._children = children + ([self.fallback] if self.fallback is not None else [])
        self._lifespan_ran = False

    def _as_asgi(self, app: Any, interface: str | None) -> ASGIApp:
        info = detect_interface(app, interface)
        if info.interface == "wsgi":
            return WsgiToAsgi(app, **self.wsgi_options)
        return to_asgi3(app, info)

    def route(self, scope: Scope) -> _Child | None:
        """The child that serves ``scope`` (rule 1), or ``None`` if nothing does."""
        path: str = scope.get("path", "/")
        root_path: str = scope.get("root_path", "")
        relative = path[len(root_path) :] if root_path and path.startswith(root_path) else path
        for child in self._routes:
            prefix = child.prefix
            if relative == prefix or relative.startswith(prefix + "/"):
                return child
        return self.fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection.

        :raises ServerProtocolError: for an unknown scope type.
        """
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if kind not in ("http", "websocket"):
            raise ServerProtocolError(f"unsupported ASGI scope type {kind!r}")
        child = self.route(scope)
        if child is None:
            await _not_found(kind, receive, send)
            return
        root_path = scope.get("root_path", "")
        child_scope = child.scope_for(scope, root_path, self._lifespan_ran)
        if kind == "http" and child.fallthrough and self.fallback is not None:
            await self._fall_through(child, child_scope, scope, receive, send)
            return
        await child.app(child_scope, receive, send)

    async def _fall_through(
        self, child: _Child, child_scope: Scope, scope: Scope, receive: Receive, send: Send
    ) -> None:
        # Rule 4. An exception from the new app propagates unchanged, even after
        # a swallowed 404 start: the server then answers 500 (STYLE: errors).
        assert self.fallback is not None
        fall = FallThrough(receive, send, self.fallthrough_body_limit, child_scope)
        await child.app(child_scope, fall.receive, fall.send)
        if not fall.falling_through:
            return
        if fall.replay_lost:
            logger.warning(
                "%s answered 404 for %r, but the request body outgrew %d bytes: answering 404",
                child.label,
                scope.get("path"),
                self.fallthrough_body_limit,
            )
            await _not_found("http", receive, send)
            return
        logger.debug("%s answered 404 for %r; falling through", child.label, scope.get("path"))
        fallback = self.fallback
        root_path = scope.get("root_path", "")
        fallback_scope = fallback.scope_for(scope, root_path, self._lifespan_ran)
        await fallback.app(fallback_scope, fall.replay_receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            raise ServerProtocolError(f"expected lifespan.startup, got {message['type']!r}")
        started: list[tuple[_Child, LifespanManager]] = []
        try:
            try:
                for child in self._children:
                    manager = LifespanManager(
                        child.app,
                        startup_timeout=self.startup_timeout,
                        shutdown_timeout=self.shutdown_timeout,
                        asgi_version="3",
                    )
                    try:
                        await manager.__aenter__()
                    except LifespanError as exc:
                        raise LifespanError(f"{child.label}: {exc}") from exc
                    started.append((child, manager))
                    child.state = manager.state if manager.supported else None
            except LifespanError as exc:
                logger.error("lifespan startup failed: %s", exc)
                await _stop_all(started)  # E6 for the children already started
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            self._lifespan_ran = True
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            if message["type"] != "lifespan.shutdown":
                raise ServerProtocolError(f"expected lifespan.shutdown, got {message['type']!r}")
        except BaseException:
            # Cancelled or broken by the server: still stop every started child.
            self._lifespan_ran = False
            await _stop_all(started)
            raise
        self._lifespan_ran = False
        failures = await _stop_all(started)
        if failures:
            text = "; ".join(failures)
            logger.error("lifespan shutdown failed: %s", text)
            await send({"type": "lifespan.shutdown.failed", "message": text})
        else:
            await send({"type": "lifespan.shutdown.complete"})


async def _stop_all(started: list[tuple[_Child, LifespanManager]]) -> list[str]:
    """Shut the started children down in reverse order (LIFO, as their task groups
    require), collecting failures instead of stopping at the first one."""
    failures: list[str] = []
    while started:
        child, manager = started.pop()
        child.state = None
        try:
            await manager.__aexit__(None, None, None)
        except LifespanError as exc:
            failures.append(f"{child.label}: {exc}")
    return failures


async def _not_found(kind: str, receive: Receive, send: Send) -> None:
    if kind == "websocket":
        # ASGI www §Close: closing before accept makes the server answer 403.
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.close", "code": 1000, "reason": ""})
        return
    body = b"Not Found"
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode("ascii")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
