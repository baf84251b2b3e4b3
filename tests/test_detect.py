"""bridge.detect: the interface table (SPEC F3) and the lifespan probe."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import pytest
from asgiref.sync import markcoroutinefunction

from bridge import AsgiToWsgi, LifespanStartupFailed, WsgiToAsgi
from bridge.detect import detect_interface, probe_lifespan, to_asgi3
from bridge.types import Message, Receive, Scope, Send


async def asgi3_function(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return


async def asgi3_with_option(option: int, scope: Scope, receive: Receive, send: Send) -> None:
    await asgi3_function(scope, receive, send)


class Asgi3Instance:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await asgi3_function(scope, receive, send)


class Asgi2Class:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, receive: Receive, send: Send) -> None:
        await asgi3_function(self.scope, receive, send)


class Asgi2ClassWithOption:
    def __init__(self, option: int, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, receive: Receive, send: Send) -> None:
        await asgi3_function(self.scope, receive, send)


def asgi2_closure(scope: Scope) -> Callable[[Receive, Send], Any]:
    async def instance(receive: Receive, send: Send) -> None:
        await asgi3_function(scope, receive, send)

    return instance


def wsgi_function(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def wsgi_with_option(option: int, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    return wsgi_function(environ, start_response)


class WsgiClass:
    """PEP 3333's "class as application": the instance is the iterable."""

    def __init__(self, environ: dict[str, Any], start_response: Any) -> None:
        start_response("200 OK", [])

    def __iter__(self) -> Any:
        yield b"ok"


def sync_returning_coroutine(scope: Scope, receive: Receive, send: Send) -> Any:
    return asgi3_function(scope, receive, send)


def marked(scope: Scope, receive: Receive, send: Send) -> Any:
    return asgi3_function(scope, receive, send)


markcoroutinefunction(marked)


def _hinted(name: str) -> Any:
    def app(*args: Any) -> Any:
        raise AssertionError("never called")

    setattr(app, name, True)
    return app


def _flask() -> Any:
    from flask import Flask

    return Flask("detect")


# Django handlers load settings in __init__, and settings can be configured
# only once per process (other test modules configure them): detection looks
# at the instance's __call__ alone, so build the instances without __init__.
def _django_wsgi() -> Any:
    from django.core.handlers.wsgi import WSGIHandler  # type: ignore[import-untyped]

    return object.__new__(WSGIHandler)


def _django_asgi() -> Any:
    from django.core.handlers.asgi import ASGIHandler  # type: ignore[import-untyped]

    return object.__new__(ASGIHandler)


def _starlette() -> Any:
    from starlette.applications import Starlette

    return Starlette()


def _fastapi() -> Any:
    from fastapi import FastAPI

    return FastAPI()


CASES: list[tuple[str, Callable[[], Any], str]] = [
    ("async-def", lambda: asgi3_function, "asgi3"),
    ("async-call-instance", Asgi3Instance, "asgi3"),
    ("asgi2-class", lambda: Asgi2Class, "asgi2"),
    ("asgi2-closure", lambda: asgi2_closure, "asgi2"),
    ("partial-async-def", lambda: functools.partial(asgi3_with_option, 1), "asgi3"),
    ("partial-async-instance", lambda: functools.partial(Asgi3Instance()), "asgi3"),
    ("partial-asgi2-class", lambda: functools.partial(Asgi2ClassWithOption, 1), "asgi2"),
    ("partial-asgi2-closure", lambda: functools.partial(asgi2_closure), "asgi2"),
    ("partial-wsgi", lambda: functools.partial(wsgi_with_option, 1), "wsgi"),
    ("wsgi-function", lambda: wsgi_function, "wsgi"),
    ("wsgi-class", lambda: WsgiClass, "wsgi"),
    ("sync-returning-coroutine", lambda: sync_returning_coroutine, "asgi3"),
    ("markcoroutinefunction", lambda: marked, "asgi3"),
    ("hint-single", lambda: _hinted("_asgi_single_callable"), "asgi3"),
    ("hint-double", lambda: _hinted("_asgi_double_callable"), "asgi2"),
    ("flask", _flask, "wsgi"),
    ("django-wsgihandler", _django_wsgi, "wsgi"),
    ("django-asgihandler", _django_asgi, "asgi3"),
    ("starlette", _starlette, "asgi3"),
    ("fastapi", _fastapi, "asgi3"),
    ("bridge-wsgitoasgi", lambda: WsgiToAsgi(wsgi_function), "asgi3"),
    ("bridge-asgitowsgi", lambda: AsgiToWsgi(asgi3_function), "wsgi"),
]


@pytest.mark.parametrize(("make", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_detect_interface_table(make: Callable[[], Any], expected: str) -> None:
    assert detect_interface(make()).interface == expected


@pytest.mark.parametrize("override", ["wsgi", "asgi3", "asgi2"])
def test_detect_override_always_wins(override: str) -> None:
    info = detect_interface(asgi3_function, override)
    assert info.interface == override
    assert info.reason == "explicit override"


def test_detect_asgi_version() -> None:
    assert detect_interface(asgi3_function).asgi_version == "3"
    assert detect_interface(Asgi2Class).asgi_version == "2"
    assert detect_interface(wsgi_function).asgi_version is None


def test_detect_rejects_ambiguous_and_uncallable() -> None:
    def anything(*args: Any) -> None:
        pass

    with pytest.raises(TypeError, match="pass the interface explicitly"):
        detect_interface(anything)
    with pytest.raises(TypeError, match="not callable"):
        detect_interface(42)
    with pytest.raises(ValueError, match="interface must be"):
        detect_interface(asgi3_function, "asgi4")


async def no_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] != "lifespan", "lifespan is not supported here"


async def failing_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    message: Message = {"type": "lifespan.startup.failed", "message": "no database"}
    await send(message)


@pytest.mark.anyio
async def test_probe_lifespan() -> None:
    assert await probe_lifespan(asgi3_function) is True
    assert await probe_lifespan(Asgi2Class) is True
    assert await probe_lifespan(no_lifespan) is False
    assert await probe_lifespan(wsgi_function) is False
    with pytest.raises(LifespanStartupFailed, match="no database"):
        await probe_lifespan(failing_lifespan)


class Asgi2Recorder:
    """An ASGI 2 app that records each scope it is built with."""

    seen: ClassVar[list[Scope]] = []

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        Asgi2Recorder.seen.append(scope)

    async def __call__(self, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.mark.anyio
async def test_to_asgi3_tells_an_asgi2_app_its_version() -> None:
    # F4: a host calling the ASGI 3 callable writes "3.0"; the ASGI 2 app
    # behind it is told "2.0", and the host's scope is left as it was.
    Asgi2Recorder.seen.clear()
    app = to_asgi3(Asgi2Recorder, detect_interface(Asgi2Recorder))
    host_scope: Scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}}
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(host_scope, receive, send)
    assert [scope["asgi"] for scope in Asgi2Recorder.seen] == [
        {"version": "2.0", "spec_version": "2.4"}
    ]
    assert host_scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    # No "asgi" key at all (it is optional for a host to write): still "2.0".
    await app({"type": "http"}, receive, send)
    assert Asgi2Recorder.seen[-1]["asgi"] == {"version": "2.0"}
    # An ASGI 3 app is handed back untouched.
    assert to_asgi3(asgi3_function, detect_interface(asgi3_function)) is asgi3_function
