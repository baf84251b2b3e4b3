"""ASGI lifespan (asgiref specs/lifespan.rst 2.0): :class:`LifespanManager` and the shim.

Rules:
1. :class:`LifespanManager` is the server side of the lifespan protocol as an
   async context manager: ``lifespan.startup`` on enter, ``lifespan.shutdown``
   on exit, on asyncio and trio alike. Tests use it directly; ``AsgiToWsgi``
   runs it on its private loop through :class:`LifespanShim` (E1).
2. The lifespan ``state`` dict is created once (E2, E10); ``manager.app`` gives
   each ``http``/``websocket`` scope a shallow copy (C10), so top-level
   assignments never leak between requests while the values stay shared.
3. Outcomes of startup (E3-E5, E9):
   - ``startup.complete``: supported, serve.
   - ``startup.failed`` or a bad message or transition (E7), or a timeout (E8):
     :class:`~bridge.LifespanStartupFailed`.
   - the app raised before ``startup.complete`` without sending ``failed``, or
     returned without either (E9): *unsupported*. The server continues without
     lifespan and sends no further events (E5); :class:`~bridge.LifespanUnsupported`
     only with ``required=True``.
4. Shutdown (E6) is sent only after a complete startup; ``shutdown.failed``,
   an exception or a timeout raise :class:`~bridge.LifespanShutdownFailed`.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, cast

import anyio
from anyio.abc import TaskGroup, TaskStatus
from asgiref.compatibility import double_to_single_callable, is_double_callable

from bridge.errors import (
    AppProtocolError,
    LifespanError,
    LifespanShutdownFailed,
    LifespanStartupFailed,
    LifespanUnsupported,
)
from bridge.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from bridge.loop import PrivateLoop

__all__ = ["AsgiVersion", "LifespanManager", "LifespanShim", "as_asgi3", "scope_asgi_version"]

logger = logging.getLogger("bridge.lifespan")

AsgiVersion = Literal["auto", "2", "3"]

# Phases of the lifespan conversation (E7 transitions).
_IDLE = "idle"  # nothing sent yet
_STARTING = "starting"  # lifespan.startup delivered, waiting for complete/failed
_STARTED = "started"  # startup.complete received
_STARTUP_FAILED = "startup failed"
_STOPPING = "stopping"  # lifespan.shutdown delivered, waiting for complete/failed
_STOPPED = "stopped"


def _is_asgi2(app: Any, asgi_version: AsgiVersion) -> bool:
    """Whether ``app`` is called ASGI 2 style: the one decision behind both
    :func:`as_asgi3` and :func:`scope_asgi_version`, so they never disagree.

    :raises ValueError: for an ``asgi_version`` other than ``"auto"``, ``"2"``, ``"3"``.
    """
    if asgi_version == "auto":
        # asgiref's rules, as its guarantee_single_callable applies them.
        return bool(is_double_callable(app))  # type: ignore[no-untyped-call]
    if asgi_version in ("2", "3"):
        return asgi_version == "2"
    raise ValueError(f"asgi_version must be 'auto', '2' or '3', not {asgi_version!r}")


def as_asgi3(app: Any, asgi_version: AsgiVersion = "auto") -> ASGIApp:
    """Return ``app`` as an ASGI 3 single callable (SPEC F1-F3).

    :param app: an ASGI 3 app, or an ASGI 2 double callable (a class, or a
        function returning an instance).
    :param asgi_version: ``"auto"`` detects the style with asgiref's rules
        (hints, classes, ``iscoroutinefunction`` honouring
        ``markcoroutinefunction``); ``"2"`` or ``"3"`` override detection, for
        instance for a sync function that returns a coroutine.
    :raises ValueError: for any other ``asgi_version``.
    """
    if _is_asgi2(app, asgi_version):
        return cast(ASGIApp, double_to_single_callable(app))  # type: ignore[no-untyped-call]
    return app  # type: ignore[no-any-return]


def scope_asgi_version(app: Any, asgi_version: AsgiVersion = "auto") -> str:
    """``scope["asgi"]["version"]`` for ``app``: ``"2.0"`` for an ASGI 2 app, else ``"3.0"``.

    SPEC F4 (ASGI main §Legacy Applications): the version names the calling
    convention the server uses, so an ASGI 2 app is told ``"2.0"``, as uvicorn
    does. It rests on the same decision as :func:`as_asgi3`.

    :param app: the ASGI application, as given (before :func:`as_asgi3`).
    :param asgi_version: ``"auto"``, ``"2"`` or ``"3"``, as for :func:`as_asgi3`.
    :raises ValueError: for any other ``asgi_version``.
    """
    return "2.0" if _is_asgi2(app, asgi_version) else "3.0"


class LifespanManager:
    """Run an ASGI app's lifespan around a block of code, as its server would.

    ::

        async with LifespanManager(app) as manager:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(manager.app)) as c:
                ...

    :param app: the ASGI application (ASGI 2 or 3).
    :param startup_timeout: seconds to wait for ``startup.complete`` (E8).
    :param shutdown_timeout: seconds to wait for ``shutdown.complete`` (E8).
    :param required: raise :class:`~bridge.LifespanUnsupported` when the app
        does not support lifespan, instead of recording ``supported = False``.
    :param asgi_version: see :func:`as_asgi3`.
    """

    def __init__(
        self,
        app: Any,
        *,
        startup_timeout: float = 60.0,
        shutdown_timeout: float = 60.0,
        required: bool = False,
        asgi_version: AsgiVersion = "auto",
    ) -> None:
        self._app = as_asgi3(app, asgi_version)
        self._asgi_version = scope_asgi_version(app, asgi_version)
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.required = required
        self.state: dict[str, Any] = {}
        """The lifespan state dict the app filled during startup (E10)."""
        self.supported: bool | None = None
        """``None`` before startup, then whether the app supports lifespan."""
        self._phase = _IDLE
        self._failure: str | None = None
        self._protocol_error: AppProtocolError | None = None
        self._app_error: BaseException | None = None
        self._app_returned = False
        self._app_done = False
        self._startup_event: anyio.Event | None = None
        self._shutdown_requested: anyio.Event | None = None
        self._shutdown_event: anyio.Event | None = None
        self._stack: AsyncExitStack | None = None

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The wrapped ASGI app, with a shallow copy of the state in each request scope.

        :param scope: as given by the server; ``http`` and ``websocket`` scopes
            get ``state = dict(manager.state)`` (C10) when lifespan is supported.
        """
        if self.supported and scope["type"] in ("http", "websocket"):
            scope = dict(scope)
            scope["state"] = dict(self.state)
        await self._app(scope, receive, send)

    async def __aenter__(self) -> LifespanManager:
        """Send ``lifespan.startup`` and wait for the outcome.

        :raises LifespanStartupFailed: on ``startup.failed``, a protocol error
            or a timeout.
        :raises LifespanUnsupported: if the app does not support lifespan and
            ``required`` is true.
        :raises RuntimeError: if the manager was already entered.
        """
        if self._phase != _IDLE:
            raise RuntimeError("a LifespanManager can be entered only once")
        self._startup_event = anyio.Event()
        self._shutdown_requested = anyio.Event()
        self._shutdown_event = anyio.Event()
        async with AsyncExitStack() as stack:
            task_group = await stack.enter_async_context(anyio.create_task_group())
            # LIFO: cancel the app task before waiting for the task group.
            stack.callback(task_group.cancel_scope.cancel)
            try:
                await self._startup(task_group)
            except LifespanError as exc:
                # Raised after the task group closed, so it is not wrapped in a group.
                error = exc
            else:
                self._stack = stack.pop_all()
                return self
        raise error

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Send ``lifespan.shutdown`` (after a complete startup) and wait for it.

        :raises LifespanShutdownFailed: on ``shutdown.failed``, an exception in
            the app or a timeout, unless the block itself raised (then the
            failure is logged and the block's exception propagates).
        """
        stack, self._stack = self._stack, None
        try:
            await self._shutdown()
        except LifespanShutdownFailed:
            if exc_type is None:
                raise
            logger.exception("ASGI lifespan shutdown failed while handling another exception")
        finally:
            if stack is not None:
                await stack.aclose()

    async def _run_app(self) -> None:
        # E2: the scope of the lifespan call; F4: an ASGI 2 app is told "2.0".
        scope = {
            "type": "lifespan",
            "asgi": {"version": self._asgi_version, "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self._app(scope, self._receive, self._send)
        except Exception as exc:
            self._app_error = exc
        else:
            self._app_returned = True
        finally:
            self._app_done = True
            assert self._startup_event is not None
            assert self._shutdown_event is not None
            self._startup_event.set()
            self._shutdown_event.set()

    async def _receive(self) -> Message:
        if self._phase == _IDLE:
            self._phase = _STARTING
            return {"type": "lifespan.startup"}
        if self._phase == _STARTED:
            assert self._shutdown_requested is not None
            await self._shutdown_requested.wait()
            self._phase = _STOPPING
            return {"type": "lifespan.shutdown"}
        # E7: nothing else is ever delivered.
        raise self._violation(f"receive() called while lifespan is {self._phase}")

    async def _send(self, message: Message) -> None:
        try:
            kind = message["type"]
        except (TypeError, KeyError):
            raise self._violation(f"lifespan message {message!r} has no 'type'") from None
        phase = self._phase
        assert self._startup_event is not None
        assert self._shutdown_event is not None
        if phase == _STARTING and kind == "lifespan.startup.complete":
            self._phase = _STARTED
            self._startup_event.set()
            return
        if phase == _STARTING and kind == "lifespan.startup.failed":
            self._failure = self._message_text(message)
            self._phase = _STARTUP_FAILED
            self._startup_event.set()
            return
        if phase == _STOPPING and kind == "lifespan.shutdown.complete":
            self._phase = _STOPPED
            self._shutdown_event.set()
            return
        if phase == _STOPPING and kind == "lifespan.shutdown.failed":
            self._failure = self._message_text(message)
            self._phase = _STOPPED
            self._shutdown_event.set()
            return
        # E7: "Anything else, and bad transitions, raise."
        raise self._violation(f"unexpected lifespan message {kind!r} while lifespan is {phase}")

    def _message_text(self, message: Message) -> str:
        text = message.get("message", "")  # LIFE: "message" defaults to ""
        if not isinstance(text, str):
            raise self._violation(f"lifespan 'message' must be a str, got {type(text).__name__}")
        return text

    def _violation(self, text: str) -> AppProtocolError:
        error = AppProtocolError(text)
        if self._protocol_error is None:
            self._protocol_error = error
        # Wake whoever waits, so a broken app never hangs the server.
        assert self._startup_event is not None
        assert self._shutdown_event is not None
        self._startup_event.set()
        self._shutdown_event.set()
        return error

    async def _startup(self, task_group: TaskGroup) -> None:
        assert self._startup_event is not None
        task_group.start_soon(self._run_app)
        try:
            with anyio.fail_after(self.startup_timeout):
                await self._startup_event.wait()
        except TimeoutError:
            raise LifespanStartupFailed(
                f"ASGI lifespan startup did not complete within {self.startup_timeout} s"
            ) from None
        if self._phase == _STARTUP_FAILED:  # the app's own word beats a later violation
            raise LifespanStartupFailed(f"ASGI lifespan startup failed: {self._failure!r}")
        if self._protocol_error is not None:
            raise LifespanStartupFailed(
                f"ASGI lifespan startup broke the protocol: {self._protocol_error}"
            ) from self._protocol_error
        if self._phase == _STARTED:
            self.supported = True
            return
        # E5/E9: the app raised or returned before startup.complete.
        self.supported = False
        self._phase = _STOPPED  # E5: no more lifespan events, including shutdown
        if self._app_error is not None:
            if self.required:
                raise LifespanUnsupported(
                    f"the ASGI app raised on the lifespan scope: {self._app_error!r}"
                ) from self._app_error
            logger.info(
                "ASGI 'lifespan' protocol appears unsupported (the app raised %r); "
                "serving without lifespan",
                self._app_error,
            )
            return
        if self.required:
            raise LifespanUnsupported(
                "the ASGI app returned from the lifespan scope without lifespan.startup.complete"
            )
        logger.warning(
            "the ASGI app returned from the lifespan scope without lifespan.startup.complete; "
            "serving without lifespan"
        )

    async def _shutdown(self) -> None:
        if self._phase != _STARTED:
            return  # E5: nothing after an unsupported or failed startup
        assert self._shutdown_requested is not None
        assert self._shutdown_event is not None
        if self._app_done:
            logger.warning("the ASGI app left the lifespan scope before lifespan.shutdown")
            self._phase = _STOPPED
            return
        self._shutdown_requested.set()
        try:
            with anyio.fail_after(self.shutdown_timeout):
                await self._shutdown_event.wait()
        except TimeoutError:
            raise LifespanShutdownFailed(
                f"ASGI lifespan shutdown did not complete within {self.shutdown_timeout} s"
            ) from None
        if self._protocol_error is not None:
            raise LifespanShutdownFailed(
                f"ASGI lifespan shutdown broke the protocol: {self._protocol_error}"
            ) from self._protocol_error
        if self._failure is not None:
            raise LifespanShutdownFailed(f"ASGI lifespan shutdown failed: {self._failure!r}")
        if self._phase != _STOPPED:
            if self._app_error is not None:
                raise LifespanShutdownFailed(
                    f"the ASGI app raised during lifespan shutdown: {self._app_error!r}"
                ) from self._app_error
            logger.warning("the ASGI app returned without lifespan.shutdown.complete")
            self._phase = _STOPPED


class LifespanShim:
    """Runs one :class:`LifespanManager` on a private loop, for a synchronous owner.

    The manager lives in its own task on the loop (a task group must be
    entered and left by one task), started by :meth:`startup` and stopped by
    :meth:`shutdown`, both called from a non-loop thread.

    :param factory: builds the manager (called on the loop).
    """

    def __init__(self, factory: Callable[[], LifespanManager]) -> None:
        self._factory = factory
        self._future: concurrent.futures.Future[None] | None = None
        self._stop: anyio.Event | None = None
        self.loop: PrivateLoop | None = None
        self.manager: LifespanManager | None = None

    async def _main(self, *, task_status: TaskStatus[tuple[LifespanManager, anyio.Event]]) -> None:
        manager = self._factory()
        stop = anyio.Event()
        async with manager:
            task_status.started((manager, stop))
            await stop.wait()

    def startup(self, loop: PrivateLoop) -> Mapping[str, Any] | None:
        """Run startup on ``loop``; return the state, or ``None`` without lifespan.

        :raises LifespanStartupFailed: see :meth:`LifespanManager.__aenter__`.
        :raises LifespanUnsupported: likewise.
        """
        loop.check_not_loop_thread()
        self.loop = loop
        self._future, (self.manager, self._stop) = loop.portal.start_task(self._main)
        return self.manager.state if self.manager.supported else None

    def shutdown(self, timeout: float) -> None:
        """Run shutdown and wait for it, at most ``timeout`` seconds plus a margin.

        :raises LifespanShutdownFailed: see :meth:`LifespanManager.__aexit__`,
            or when the loop did not answer in time.
        """
        future, stop, loop = self._future, self._stop, self.loop
        self._future = self._stop = None
        if future is None or stop is None or loop is None:
            return
        loop.check_not_loop_thread()
        if not loop.running:
            logger.warning("bridge's loop stopped before ASGI lifespan shutdown could run")
            return
        loop.call_soon(stop.set)
        try:
            future.result(timeout + 5.0)
        except concurrent.futures.CancelledError:
            logger.warning("ASGI lifespan was cancelled before shutdown completed")
        except concurrent.futures.TimeoutError:
            raise LifespanShutdownFailed(
                f"bridge's loop did not finish ASGI lifespan shutdown within {timeout + 5.0} s"
            ) from None
