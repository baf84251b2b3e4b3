"""bridge.LifespanManager on asyncio and trio (SPEC section E)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge import (
    AppProtocolError,
    LifespanManager,
    LifespanShutdownFailed,
    LifespanStartupFailed,
    LifespanUnsupported,
)
from bridge.lifespan import scope_asgi_version
from bridge.types import Message, Receive, Scope, Send

pytestmark = pytest.mark.anyio


def scripted(
    *,
    on_startup: list[Message] | None = None,
    on_shutdown: list[Message] | None = None,
    log: list[Any] | None = None,
) -> Any:
    """A lifespan app that answers each event with the given messages."""
    startup = [{"type": "lifespan.startup.complete"}] if on_startup is None else on_startup
    shutdown = [{"type": "lifespan.shutdown.complete"}] if on_shutdown is None else on_shutdown
    record = [] if log is None else log

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": repr(scope.get("state")).encode()})
            return
        record.append(scope)
        message = await receive()
        record.append(message["type"])
        scope["state"]["ready"] = True
        for reply in startup:
            await send(reply)
        message = await receive()
        record.append(message["type"])
        for reply in shutdown:
            await send(reply)

    return app


async def test_lifespan_startup_and_shutdown() -> None:
    # E2, E3, E6
    log: list[Any] = []
    async with LifespanManager(scripted(log=log)) as manager:
        assert manager.supported is True
        assert manager.state == {"ready": True}
        assert log[1:] == ["lifespan.startup"]
    assert log[1:] == ["lifespan.startup", "lifespan.shutdown"]
    scope = log[0]
    assert scope["type"] == "lifespan"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.0"}
    assert scope["state"] is manager.state


async def test_lifespan_state_reaches_requests_as_shallow_copies() -> None:
    # E10, C10
    seen: list[dict[str, Any]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            scope["state"]["shared"] = {"hits": 0}
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        state = scope["state"]
        seen.append(state)
        state["shared"]["hits"] += 1
        state["top"] = "level"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % state["shared"]["hits"]})

    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/")).text == "1"
            assert (await client.get("/")).text == "2"
        assert "top" not in manager.state
        assert seen[0] is not seen[1]
        assert seen[0]["shared"] is seen[1]["shared"] is manager.state["shared"]


async def test_lifespan_startup_failed() -> None:
    # E4: message defaults to "".
    app = scripted(on_startup=[{"type": "lifespan.startup.failed", "message": "no database"}])
    with pytest.raises(LifespanStartupFailed, match="no database"):
        async with LifespanManager(app):
            pytest.fail("must not enter")
    with pytest.raises(LifespanStartupFailed, match="failed: ''"):
        async with LifespanManager(scripted(on_startup=[{"type": "lifespan.startup.failed"}])):
            pytest.fail("must not enter")


async def test_lifespan_startup_timeout() -> None:
    # E8
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await anyio.sleep_forever()

    with pytest.raises(LifespanStartupFailed, match=r"within 0\.01 s"):
        async with LifespanManager(app, startup_timeout=0.01):
            pytest.fail("must not enter")


async def test_lifespan_shutdown_timeout() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await anyio.sleep_forever()

    with pytest.raises(LifespanShutdownFailed, match=r"within 0\.01 s"):
        async with LifespanManager(app, shutdown_timeout=0.01):
            pass


async def test_lifespan_shutdown_failed() -> None:
    app = scripted(on_shutdown=[{"type": "lifespan.shutdown.failed", "message": "leak"}])
    with pytest.raises(LifespanShutdownFailed, match="leak"):
        async with LifespanManager(app):
            pass


async def test_lifespan_shutdown_error_does_not_mask_the_block_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = scripted(on_shutdown=[{"type": "lifespan.shutdown.failed", "message": "leak"}])
    with pytest.raises(KeyError):
        async with LifespanManager(app):
            raise KeyError("body")
    assert "shutdown failed" in caplog.text


async def test_lifespan_app_raising_during_shutdown() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise RuntimeError("cleanup broke")

    with pytest.raises(LifespanShutdownFailed, match="cleanup broke"):
        async with LifespanManager(app):
            pass


async def unsupported(scope: Scope, receive: Receive, send: Send) -> None:
    calls.append(scope["type"])
    if scope["type"] == "lifespan":
        raise ValueError("no lifespan here")
    body = b"no state" if "state" not in scope else b"state"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


calls: list[str] = []


async def test_lifespan_unsupported_app(caplog: pytest.LogCaptureFixture) -> None:
    # E5: keep serving, send no more lifespan events (not even shutdown).
    calls.clear()
    with caplog.at_level(logging.INFO, "bridge"):
        async with LifespanManager(unsupported) as manager:
            assert manager.supported is False
    assert calls == ["lifespan"]
    assert "unsupported" in caplog.text
    with pytest.raises(LifespanUnsupported, match="no lifespan here"):
        async with LifespanManager(unsupported, required=True):
            pytest.fail("must not enter")


async def test_lifespan_app_returning_without_complete(caplog: pytest.LogCaptureFixture) -> None:
    # E9: treated as unsupported, and logged.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()

    async with LifespanManager(app) as manager:
        assert manager.supported is False
    assert "without lifespan.startup.complete" in caplog.text
    with pytest.raises(LifespanUnsupported):
        async with LifespanManager(app, required=True):
            pass


async def test_lifespan_unsupported_app_gets_no_state() -> None:
    async with LifespanManager(unsupported) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/")).text == "no state"


@pytest.mark.parametrize(
    ("startup", "match"),
    [
        ([{"type": "lifespan.shutdown.complete"}], "unexpected lifespan message"),
        ([{"type": "http.response.start"}], "unexpected lifespan message"),
        ([{"no": "type"}], "no 'type'"),
        ([{"type": "lifespan.startup.failed", "message": 5}], "must be a str"),
    ],
)
async def test_lifespan_bad_startup_messages(startup: list[Message], match: str) -> None:
    # E7: invalid messages raise in the app, and startup fails.
    raised: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        try:
            for message in startup:
                await send(message)
        except AppProtocolError as exc:
            raised.append(exc)
            raise

    with pytest.raises(LifespanStartupFailed, match="broke the protocol"):
        async with LifespanManager(app):
            pytest.fail("must not enter")
    assert len(raised) == 1
    assert match in str(raised[0])


async def test_lifespan_bad_transitions() -> None:
    # E7: startup.complete during shutdown, and receive() after shutdown, raise.
    raised: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        try:
            await send({"type": "lifespan.startup.complete"})
        except AppProtocolError as exc:
            raised.append(exc)
        await send({"type": "lifespan.shutdown.complete"})
        try:
            await receive()
        except AppProtocolError as exc:
            raised.append(exc)

    with pytest.raises(LifespanShutdownFailed, match="broke the protocol"):
        async with LifespanManager(app):
            pass
    assert [str(exc).split(" while")[0] for exc in raised] == [
        "unexpected lifespan message 'lifespan.startup.complete'",
        "receive() called",
    ]


async def test_lifespan_receive_before_startup_complete_is_a_violation() -> None:
    # E7: the app must answer startup before asking for the next event.
    with pytest.raises(LifespanStartupFailed, match="receive\\(\\) called"):
        async with LifespanManager(scripted(on_startup=[])):
            pytest.fail("must not enter")


async def test_lifespan_manager_enters_once() -> None:
    manager = LifespanManager(scripted())
    async with manager:
        with pytest.raises(RuntimeError, match="only once"):
            await manager.__aenter__()


class Asgi2Lifespan:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, receive: Receive, send: Send) -> None:
        await receive()
        self.scope["state"]["asgi2"] = True
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})


async def test_lifespan_asgi2_app() -> None:
    # F2
    async with LifespanManager(Asgi2Lifespan) as manager:
        assert manager.state == {"asgi2": True}


class Asgi2Scope(Asgi2Lifespan):
    """:class:`Asgi2Lifespan` that keeps the lifespan scope it was built with."""

    scopes: ClassVar[list[Scope]] = []

    def __init__(self, scope: Scope) -> None:
        super().__init__(scope)
        Asgi2Scope.scopes.append(scope)


async def test_lifespan_scope_version_names_the_calling_convention() -> None:
    # E2, F4: "3.0" to an ASGI 3 app, "2.0" to an ASGI 2 app (as uvicorn says).
    seen: list[Scope] = []

    async def asgi3(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    async with LifespanManager(asgi3):
        pass
    Asgi2Scope.scopes = []
    async with LifespanManager(Asgi2Scope):
        pass
    assert [scope["asgi"] for scope in (*seen, *Asgi2Scope.scopes)] == [
        {"version": "3.0", "spec_version": "2.0"},
        {"version": "2.0", "spec_version": "2.0"},
    ]


@pytest.mark.parametrize(
    ("app", "asgi_version", "expected"),
    [
        (Asgi2Lifespan, "auto", "2.0"),
        (Asgi2Lifespan, "2", "2.0"),
        (Asgi2Lifespan, "3", "3.0"),  # the override wins, as in as_asgi3
        (lambda scope: None, "auto", "2.0"),  # a sync callable of one argument
        (Starlette(), "auto", "3.0"),
    ],
    ids=["asgi2-class", "override-2", "override-3", "asgi2-closure", "starlette"],
)
def test_scope_asgi_version(app: Any, asgi_version: Any, expected: str) -> None:
    # F4: the same detection as as_asgi3 (asgiref's), so the two never disagree.
    assert scope_asgi_version(app, asgi_version) == expected


def test_scope_asgi_version_rejects_unknown_override() -> None:
    with pytest.raises(ValueError, match="asgi_version"):
        scope_asgi_version(Asgi2Lifespan, "4")  # type: ignore[arg-type]


async def test_lifespan_real_starlette_app() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        events.append("startup")
        yield {"db": {"name": "memory"}}
        events.append("shutdown")

    async def homepage(request: Request) -> JSONResponse:
        return JSONResponse({"db": request.state.db["name"]})

    app = Starlette(routes=[Route("/", homepage)], lifespan=lifespan)
    async with LifespanManager(app) as manager:
        assert events == ["startup"]
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/")).json() == {"db": "memory"}
    assert events == ["startup", "shutdown"]


async def test_lifespan_real_starlette_app_failing_startup() -> None:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not app.debug:
            raise ConnectionError("database down")
        yield  # pragma: no cover

    app = Starlette(lifespan=lifespan)
    # Starlette sends startup.failed and re-raises: that is a failure, not "unsupported".
    with pytest.raises(LifespanStartupFailed, match="database down"):
        async with LifespanManager(app):
            pytest.fail("must not enter")
