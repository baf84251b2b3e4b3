"""``AsgiToWsgi``: an ASGI application served by a WSGI server.

Rules:
1. This module is the WSGI callable and its lifespan; one request's exchange
   between the WSGI server's thread and the private loop lives in
   :mod:`bridge.asgi_exchange` (its "Rules" block states the thread/loop
   boundary: one hop each way for a small response, read-ahead of the request
   body, backpressure, disconnects).
2. The per-request path does as little as it can: one check that the loop is
   the one lifespan ran on, the scope (:func:`~bridge.scope.scope_from_environ`),
   one :class:`~bridge.asgi_exchange.Exchange`, and one thread-safe spawn.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Literal

from bridge import loop as _loop_module
from bridge import process_exit
from bridge.asgi_exchange import Exchange
from bridge.errors import (
    BridgeError,
    LifespanStartupFailed,
    LifespanUnsupported,
    ServerProtocolError,
)
from bridge.lifespan import (
    AsgiVersion,
    LifespanManager,
    LifespanShim,
    as_asgi3,
    scope_asgi_version,
)
from bridge.loop import PrivateLoop, default_backend_options, get_loop
from bridge.scope import DEFAULT_EXTENSIONS, scope_from_environ
from bridge.types import ASGIApp, Environ, StartResponse
from bridge.wsgi_replies import plain_response

__all__ = ["AsgiToWsgi"]

logger = logging.getLogger("bridge.asgi_to_wsgi")


class AsgiToWsgi:
    """An ASGI application served by a WSGI server: ``AsgiToWsgi(asgi_app)`` *is* a WSGI app.

    ::

        wsgi_app = AsgiToWsgi(asgi_app)            # lifespan runs before the first request
        with AsgiToWsgi(asgi_app) as wsgi_app:     # or explicitly: startup now, shutdown on exit
            ...

    :param app: the ASGI application (ASGI 3, or ASGI 2 double callable).
    :param lifespan: ``"auto"`` runs lifespan and serves apps that do not
        support it; ``"on"`` makes an unsupported app an error; ``"off``" skips it.
    :param backend: the private loop's backend, ``"asyncio"`` or ``"trio"``.
    :param backend_options: passed to :func:`anyio.run`. ``None`` (the
        default) means uvloop on asyncio when it is installed, as uvicorn's
        ``--loop auto`` does (:func:`~bridge.loop.default_backend_options`);
        ``{}`` is asyncio's own loop.
    :param startup_timeout: seconds to wait for ``lifespan.startup.complete``.
    :param shutdown_timeout: seconds to wait for ``lifespan.shutdown.complete``.
    :param disconnect_grace: seconds the app may run on after its client left
        before it is cancelled (D7).
    :param chunk_size: the size of each ``wsgi.input`` read (D1) and of file reads.
    :param send_buffer: bytes the app may send ahead of the WSGI server before
        ``send()`` waits (D5); defaults to ``8 * chunk_size`` (512 KiB), room for
        several chunks, so one wake-up of the app moves several of them. Each
        wait costs a wake-up of the app's loop and one of the server thread;
        over 256 KiB, 512 KiB gave a 1 MiB download in 64 KiB chunks 8% more
        MiB/s on granian ``--interface wsgi`` (3% on gunicorn gthread), with
        4 KiB chunk streams unchanged. A request's buffer is bounded by it, so
        a server with N threads holds at most N of them.
    :param asgi_version: ``"auto"``, ``"2"`` or ``"3"``: how to call ``app`` (F3);
        an ASGI 2 app's scopes say ``asgi.version`` ``"2.0"``, as uvicorn's do (F4).
    :raises ValueError: for an invalid option.
    """

    def __init__(
        self,
        app: Any,
        *,
        lifespan: Literal["auto", "on", "off"] = "auto",
        backend: Literal["asyncio", "trio"] = "asyncio",
        backend_options: dict[str, Any] | None = None,
        startup_timeout: float = 60.0,
        shutdown_timeout: float = 60.0,
        disconnect_grace: float = 5.0,
        chunk_size: int = 64 * 1024,
        send_buffer: int | None = None,
        asgi_version: AsgiVersion = "auto",
    ) -> None:
        if lifespan not in ("auto", "on", "off"):
            raise ValueError(f"lifespan must be 'auto', 'on' or 'off', not {lifespan!r}")
        if backend not in ("asyncio", "trio"):
            raise ValueError(f"backend must be 'asyncio' or 'trio', not {backend!r}")
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        if disconnect_grace < 0:
            raise ValueError("disconnect_grace must not be negative")
        self.app: ASGIApp = as_asgi3(app, asgi_version)
        # F4: what scope["asgi"]["version"] says ("2.0" to an ASGI 2 app).
        self._scope_version = scope_asgi_version(app, asgi_version)
        # The app as given: the lifespan manager wraps it itself, so that its
        # lifespan scope says the same version as the requests' scopes.
        self._given: tuple[Any, AsgiVersion] = (app, asgi_version)
        self.lifespan = lifespan
        self.backend = backend
        if backend_options is None:
            backend_options = default_backend_options(backend)
        self.backend_options = dict(backend_options)
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.disconnect_grace = disconnect_grace
        self.chunk_size = chunk_size
        self.send_buffer = 8 * chunk_size if send_buffer is None else send_buffer
        self._extensions = DEFAULT_EXTENSIONS
        self._lock = threading.Lock()
        self._loop: PrivateLoop | None = None  # the loop lifespan ran on
        self._generation = -1
        self._state: dict[str, Any] | None = None
        self._startup_error: BaseException | None = None
        self._shim: LifespanShim | None = None

    # ------------------------------------------------------------ lifespan

    def _ready_loop(self) -> PrivateLoop:
        loop = self._loop
        if loop is not None and self._generation == _loop_module.generation and loop.running:
            return loop
        with self._lock:
            loop = self._loop
            if loop is None or self._generation != _loop_module.generation or not loop.running:
                # E1/E11: first use, or a fresh loop after fork or stop: lifespan again.
                loop = get_loop(self.backend, self.backend_options)
                self._start_lifespan(loop)
                self._loop = loop
                self._generation = _loop_module.generation
            return loop

    def _start_lifespan(self, loop: PrivateLoop) -> None:
        self._state = None
        self._startup_error = None
        self._shim = None
        if self.lifespan == "off":
            return
        shim = LifespanShim(self._manager)
        try:
            state = shim.startup(loop)
        except (LifespanStartupFailed, LifespanUnsupported) as exc:
            # E4: refuse to serve: every request gets a 500 and a log line.
            self._startup_error = exc
            logger.error("ASGI lifespan startup failed; every request will get a 500: %s", exc)
            return
        self._shim = shim
        if state is not None:
            self._state = state  # type: ignore[assignment]
            process_exit.register(self._close_at_exit)

    def _manager(self) -> LifespanManager:
        app, asgi_version = self._given
        return LifespanManager(
            app,
            startup_timeout=self.startup_timeout,
            shutdown_timeout=self.shutdown_timeout,
            required=self.lifespan == "on",
            asgi_version=asgi_version,
        )

    def __enter__(self) -> AsgiToWsgi:
        """Run lifespan startup now.

        :raises LifespanStartupFailed: if startup failed, raised or timed out.
        :raises LifespanUnsupported: with ``lifespan="on"`` for an app without lifespan.
        """
        self._ready_loop()
        if self._startup_error is not None:
            raise self._startup_error
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Run lifespan shutdown (E6). A later request runs startup again.

        :raises LifespanShutdownFailed: if shutdown failed, raised or timed out.
        """
        with self._lock:
            shim, self._shim = self._shim, None
            self._loop = None
            self._state = None
            process_exit.unregister(self._close_at_exit)
            if shim is not None and self._generation == _loop_module.generation:
                shim.shutdown(self.shutdown_timeout)

    def _close_at_exit(self) -> None:
        try:
            self.close()
        except BridgeError:
            logger.exception("ASGI lifespan shutdown at process exit failed")

    # ------------------------------------------------------------ WSGI

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request (PEP 3333)."""
        loop = self._ready_loop()
        loop.check_not_loop_thread()
        if self._startup_error is not None:
            logger.error("refusing request: ASGI lifespan startup failed: %s", self._startup_error)
            return plain_response(
                start_response, "500 Internal Server Error", "Internal Server Error"
            )
        try:
            scope = scope_from_environ(
                environ,
                state=self._state,
                extensions=self._extensions,
                asgi_version=self._scope_version,
            )
            exchange = Exchange(self, environ, scope, loop)
        except ServerProtocolError as exc:
            logger.warning("bad request from the WSGI server: %s", exc)
            return plain_response(start_response, "400 Bad Request", "Bad Request")
        loop.spawn(exchange.run)
        return exchange.respond(start_response)
