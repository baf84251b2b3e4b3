"""bridge.dispatch: routing, root_path, fall-through with body replay, per-child lifespan."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import pytest

from bridge import Dispatcher, LifespanManager, LifespanStartupFailed, Mount
from bridge.types import Message, Receive, Scope, Send
from compat_suite.servers import serve
from tests.scopes import http_scope

pytestmark = pytest.mark.anyio


async def _json(send: Send, data: dict[str, Any], status: int = 200) -> None:
    body = json.dumps(data).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        assert message["type"] == "http.request"
        body += bytes(message.get("body", b""))
        if not message.get("more_body", False):
            return body


def asgi_app(name: str, *, status: int = 200, state: dict[str, Any] | None = None) -> Any:
    """An ASGI app that answers with what it saw; with ``state``, it supports lifespan."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            if state is None:
                raise RuntimeError("no lifespan here")
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    scope["state"].update(state)
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept", "subprotocol": None, "headers": []})
            await send({"type": "websocket.send", "text": f"{name} {scope['root_path']}"})
            await send({"type": "websocket.close", "code": 1000})
            return
        body = await _read_body(receive)
        await _json(
            send,
            {
                "app": name,
                "path": scope["path"],
                "root_path": scope.get("root_path", ""),
                "state": scope.get("state"),
                "body": body.decode(),
            },
            status,
        )

    return app


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    body = environ["wsgi.input"].read()
    data = {
        "app": "wsgi",
        "SCRIPT_NAME": environ["SCRIPT_NAME"],
        "PATH_INFO": environ["PATH_INFO"],
        "body": body.decode(),
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(data).encode()]


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test")


async def test_dispatch_longest_prefix_on_segment_boundary() -> None:
    dispatcher = Dispatcher(
        {"/api": asgi_app("api"), "/api/v2/": asgi_app("v2"), "/wsgi": wsgi_app},
        fallback=asgi_app("legacy"),
    )
    async with _client(dispatcher) as client:
        cases = {
            "/api": ("api", "/api"),
            "/api/x": ("api", "/api"),
            "/api/v2": ("v2", "/api/v2"),
            "/api/v2/items": ("v2", "/api/v2"),
            "/api/v20": ("api", "/api"),
            "/apix": ("legacy", ""),
            "/": ("legacy", ""),
        }
        for path, (name, root_path) in cases.items():
            data = (await client.get(path)).json()
            assert (data["app"], data["root_path"], data["path"]) == (name, root_path, path), path
        data = (await client.post("/wsgi/a/b?q=1", content=b"payload")).json()
    assert data == {"app": "wsgi", "SCRIPT_NAME": "/wsgi", "PATH_INFO": "/a/b", "body": "payload"}


async def test_dispatch_nested_under_root_path() -> None:
    inner = Dispatcher({"/api": asgi_app("api")})
    outer = Dispatcher({"/outer": inner})
    async with _client(outer) as client:
        data = (await client.get("/outer/api/x")).json()
        assert (await client.get("/api/x")).status_code == 404  # no fallback: 404
    assert (data["path"], data["root_path"]) == ("/outer/api/x", "/outer/api")


async def test_dispatch_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError, match="starting with '/'"):
        Dispatcher({"api": asgi_app("api")})
    with pytest.raises(ValueError, match="fallback="):
        Dispatcher({"/": asgi_app("api")})
    with pytest.raises(ValueError, match="mounted twice"):
        Dispatcher([Mount("/a", asgi_app("a")), Mount("/a/", asgi_app("b"))])
    with pytest.raises(ValueError, match="needs a fallback"):
        Dispatcher([Mount("/a", asgi_app("a"), fallthrough_on_404=True)])


def _fallthrough(new: Any, *, limit: int = 1024 * 1024) -> Dispatcher:
    return Dispatcher(
        [Mount("/api", new, fallthrough_on_404=True)],
        fallback=wsgi_app,
        fallthrough_body_limit=limit,
    )


async def test_dispatch_fallthrough_replays_body_to_legacy() -> None:
    dispatcher = _fallthrough(asgi_app("new", status=404))
    async with _client(dispatcher) as client:
        response = await client.post("/api/users/1", content=b"x" * 5000)
    # The legacy app is the fallback, mounted at the root: the full path is PATH_INFO.
    assert response.status_code == 200
    assert response.json() == {
        "app": "wsgi",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/api/users/1",
        "body": "x" * 5000,
    }


async def test_dispatch_fallthrough_when_new_app_did_not_read_body() -> None:
    async def lazy_404(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"new 404"})

    async with _client(_fallthrough(lazy_404)) as client:
        response = await client.post("/api/x", content=b"unread body")
    assert response.json()["body"] == "unread body"


async def test_dispatch_fallthrough_passes_other_statuses() -> None:
    async with _client(_fallthrough(asgi_app("new", status=500))) as client:
        response = await client.post("/api/x", content=b"abc")
    assert response.status_code == 500
    assert response.json()["app"] == "new"


@pytest.mark.parametrize("announce_length", [True, False], ids=["content-length", "chunked"])
async def test_dispatch_fallthrough_body_limit(announce_length: bool) -> None:
    dispatcher = _fallthrough(asgi_app("new", status=404), limit=10)

    async def chunks() -> Any:
        for _ in range(3):
            yield b"12345"

    content: Any = b"123451234512345" if announce_length else chunks()
    async with _client(dispatcher) as client:
        small = await client.post("/api/x", content=b"1234567890")
        large = await client.post("/api/x", content=content)
    assert small.status_code == 200
    assert small.json()["app"] == "wsgi"
    # Too large to replay: the new app's 404 is the answer.
    assert large.status_code == 404
    assert large.json() == {
        "app": "new",
        "path": "/api/x",
        "root_path": "/api",
        "state": None,
        "body": "123451234512345",
    }


async def test_dispatch_fallthrough_message_by_message() -> None:
    """Scripted receive/send: chunk boundaries and more_body reach the legacy app unchanged."""
    seen: list[Message] = []

    async def legacy(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            seen.append(message)
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"legacy"})

    async def new(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()  # reads one chunk only, then answers 404
        await send({"type": "http.response.start", "status": 404, "headers": []})
        assert (await receive())["type"] == "http.disconnect"  # rule 1: discarded anyway
        await send({"type": "http.response.body", "body": b"nope"})

    dispatcher = Dispatcher([Mount("/api", new, fallthrough_on_404=True)], fallback=legacy)
    incoming: list[Message] = [
        {"type": "http.request", "body": b"a", "more_body": True},
        {"type": "http.request", "body": b"b", "more_body": True},
        {"type": "http.request", "body": b"c", "more_body": False},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await dispatcher(http_scope(method="POST", path="/api/x", headers=[]), receive, send)
    assert [m["body"] for m in seen] == [b"a", b"b", b"c"]
    assert [m["more_body"] for m in seen] == [True, True, False]
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 200


async def test_dispatch_websocket_routing() -> None:
    dispatcher = Dispatcher({"/ws": asgi_app("ws")})

    async def run(path: str) -> list[Message]:
        incoming: list[Message] = [{"type": "websocket.connect"}]
        sent: list[Message] = []

        async def receive() -> Message:
            return incoming.pop(0)

        async def send(message: Message) -> None:
            sent.append(message)

        await dispatcher({"type": "websocket", "path": path, "headers": []}, receive, send)
        return sent

    routed = await run("/ws/chat")
    assert routed[1] == {"type": "websocket.send", "text": "ws /ws"}
    unrouted = await run("/other")
    assert [m["type"] for m in unrouted] == ["websocket.close"]  # before accept: a 403


async def test_dispatch_lifespan_state_is_per_child() -> None:
    dispatcher = Dispatcher(
        {"/a": asgi_app("a", state={"who": "a"}), "/b": asgi_app("b", state={"who": "b"})},
        fallback=asgi_app("none"),  # raises on lifespan: unsupported, no state
    )
    async with LifespanManager(dispatcher) as manager, _client(manager.app) as client:
        a = (await client.get("/a/")).json()
        b = (await client.get("/b/")).json()
        fallback = (await client.get("/")).json()
    assert a["state"] == {"who": "a"}
    assert b["state"] == {"who": "b"}
    assert fallback["state"] is None


async def test_dispatch_lifespan_state_is_a_copy_per_request() -> None:
    async def mutating(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await asgi_app("x", state={"shared": []})(scope, receive, send)
            return
        seen = {"keys": sorted(scope["state"]), "shared": len(scope["state"]["shared"])}
        scope["state"]["shared"].append(1)  # values are shared (C10)
        scope["state"]["top"] = "no leak"  # top-level assignments are not
        await _json(send, seen)

    manager = LifespanManager(Dispatcher({"/m": mutating}))
    async with manager, _client(manager.app) as client:
        first = (await client.get("/m")).json()
        second = (await client.get("/m")).json()
    assert first == {"keys": ["shared"], "shared": 0}
    assert second == {"keys": ["shared"], "shared": 1}


async def test_dispatch_failed_child_startup_names_the_mount() -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    stopped: list[str] = []

    def tracking(name: str) -> Callable[[Scope, Receive, Send], Any]:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            stopped.append(name)
            await send({"type": "lifespan.shutdown.complete"})

        return app

    dispatcher = Dispatcher({"/first": tracking("first"), "/api": failing})
    with pytest.raises(LifespanStartupFailed, match=r"mount '/api': .*no database"):
        async with LifespanManager(dispatcher):
            pass
    assert stopped == ["first"]  # the child already started was shut down


async def test_dispatch_shutdown_is_reverse_order() -> None:
    order: list[str] = []

    def tracking(name: str) -> Callable[[Scope, Receive, Send], Any]:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await receive()
            order.append(f"start {name}")
            await send({"type": "lifespan.startup.complete"})
            await receive()
            order.append(f"stop {name}")
            await send({"type": "lifespan.shutdown.complete"})

        return app

    dispatcher = Dispatcher({"/a": tracking("a"), "/b": tracking("b")}, fallback=tracking("f"))
    async with LifespanManager(dispatcher):
        pass
    assert order == ["start a", "start b", "start f", "stop f", "stop b", "stop a"]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
def test_dispatch_migration_app_on_uvicorn(anyio_backend: str) -> None:
    """One real server: the migration example on uvicorn, fall-through over real HTTP."""
    with serve("uvicorn", "examples.migration:app") as server:
        client = httpx.Client(base_url=server.base_url, timeout=10)
        with client:
            assert client.get("/api/items/1").json()["served_by"] == "fastapi"
            assert client.get("/api/users/7").json() == {"served_by": "flask", "user": 7}
            echoed = client.post("/api/echo", content=b"x" * 100_000).json()
            assert echoed == {"served_by": "flask", "body": "x" * 100_000}
            assert client.get("/").text == "legacy home"


class Asgi2Versioned:
    """An ASGI 2 app answering with the ``asgi`` scope key it was built with."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, receive: Receive, send: Send) -> None:
        if self.scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.scope["state"]["lifespan_asgi"] = dict(self.scope["asgi"])
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        await _read_body(receive)
        await _json(send, {"asgi": self.scope["asgi"], "state": self.scope.get("state")})


async def test_dispatch_tells_an_asgi2_mount_its_version() -> None:
    # SPEC F4: the mounted ASGI 2 app is told "2.0", in requests and lifespan.
    manager = LifespanManager(Dispatcher({"/two": Asgi2Versioned}))
    async with manager, _client(manager.app) as client:
        data = (await client.get("/two/x")).json()
    assert data["asgi"]["version"] == "2.0"
    assert data["state"]["lifespan_asgi"]["version"] == "2.0"
