"""A raw ASGI conformance app for the matrix; ``application`` serves it on WSGI servers.

Every route exercises one rule of SPEC sections C, D and E with nothing between
the adapter and the app. ``application`` is the app behind the adapter that
``COMPAT_MATRIX_ADAPTER`` names, mounted so that ``/mnt/...`` arrives with
``root_path="/mnt"``.

Routes: ``/echo...`` (the scope essentials and the body, as JSON), ``/hello``,
``/status/204``, ``/status/304``, ``/set-cookies``, ``/stream?gate=N``,
``/error-before``, ``/error-after``, ``/no-start``, ``/pathsend``,
``/disconnect?key=K&gate=N``, ``/lifespan`` and ``/_probe/K?wait=FACT``.
Lifespan startup puts ``started`` and a shared ``hits`` list in the state;
shutdown prints :data:`SHUTDOWN_MARKER` to stderr (the server's log).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from typing import Any
from urllib.parse import parse_qs

import anyio
import anyio.to_thread

from bridge.types import Receive, Scope, Send
from compat_suite.apps import CHUNK_SIZE
from compat_suite.apps.probes import (
    DISCONNECT_CHUNKS,
    FILE_BODY,
    PROBE_PREFIX,
    PROBES,
    SHUTDOWN_MARKER,
)
from compat_suite.gate import await_gate
from compat_suite.matrix.variants import mounted_wsgi, wrap_asgi_app

__all__ = ["app", "application"]

_TEXT = [(b"content-type", b"text/plain")]


def _pathsend_file() -> str:
    """The file ``/pathsend`` sends: one per user and content, shared by every process.

    Each server process imports this module, and servers are often stopped
    by a signal that skips ``atexit``: a file per process would pile up in
    the temp directory. So the name is fixed by the user and the content,
    and a process that finds the file missing or different writes it under
    a temporary name and renames it into place (atomic: a reader never sees
    it half written).
    """
    digest = hashlib.sha256(FILE_BODY).hexdigest()[:16]
    user = os.getuid() if hasattr(os, "getuid") else 0
    path = os.path.join(tempfile.gettempdir(), f"bridge-pathsend-{user}-{digest}")
    try:
        with open(path, "rb") as existing:
            if existing.read() == FILE_BODY:
                return path
    except OSError:
        pass
    fd, staging = tempfile.mkstemp(prefix="bridge-pathsend-staging-")
    with os.fdopen(fd, "wb") as staged:
        staged.write(FILE_BODY)
    os.replace(staging, path)
    return path


PATHSEND_FILE = _pathsend_file()


async def _lifespan(receive: Receive, send: Send, state: dict[str, Any] | None) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if state is not None:
                state["started"] = True
                state["hits"] = []
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            print(SHUTDOWN_MARKER, file=sys.stderr, flush=True)
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive: Receive) -> tuple[bytes, int]:
    chunks = []
    messages = 0
    while True:
        message = await receive()
        messages += 1
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks), messages


def _latin1(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


async def _respond(send: Send, status: int, body: bytes, headers: Any = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or _TEXT})
    await send({"type": "http.response.body", "body": body})


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    body, messages = await _read_body(receive)
    facts = {
        "asgi": scope.get("asgi"),
        "http_version": scope.get("http_version"),
        "method": scope.get("method"),
        "scheme": scope.get("scheme"),
        "path": scope.get("path"),
        "raw_path": _latin1(scope.get("raw_path")),
        "root_path": scope.get("root_path"),
        "query_string": _latin1(scope.get("query_string")),
        "headers": [[_latin1(bytes(k)), _latin1(bytes(v))] for k, v in scope.get("headers", [])],
        "header_types_ok": all(
            isinstance(k, bytes) and isinstance(v, bytes) for k, v in scope.get("headers", [])
        ),
        "client": scope.get("client"),
        "server": scope.get("server"),
        "extensions": sorted((scope.get("extensions") or {}).keys()),
        "body_length": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "body_messages": messages,
    }
    await _respond(send, 200, json.dumps(facts).encode(), [(b"content-type", b"application/json")])


async def _disconnect(key: str, gate: int, receive: Receive, send: Send) -> None:
    disconnected = anyio.Event()

    async def watch() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                PROBES.record(key, "disconnect", True)
                disconnected.set()
                return

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(watch)
        await send({"type": "http.response.start", "status": 200, "headers": _TEXT})
        await send({"type": "http.response.body", "body": b"x" * CHUNK_SIZE, "more_body": True})
        PROBES.record(key, "gate_opened", await await_gate(gate))
        try:
            for _ in range(DISCONNECT_CHUNKS):
                if disconnected.is_set():
                    break
                chunk = b"x" * CHUNK_SIZE
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                PROBES.add(key, "produced")
            else:
                PROBES.record(key, "completed", True)
                await send({"type": "http.response.body", "body": b""})
        except OSError:
            PROBES.record(key, "send_raised", True)
        with anyio.move_on_after(10):
            await disconnected.wait()
        tasks.cancel_scope.cancel()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The conformance app; see the module docstring for its routes."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send, scope.get("state"))
        return
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope type {scope['type']!r}")
    root = scope.get("root_path", "")
    path = scope["path"][len(root) :] if scope["path"].startswith(root) else scope["path"]
    raw_query = scope.get("query_string", b"").decode("latin-1")
    query = {k: v[-1] for k, v in parse_qs(raw_query).items()}
    if path.startswith(PROBE_PREFIX):
        body = await anyio.to_thread.run_sync(PROBES.answer, path, raw_query)
        await _respond(send, 200, body, [(b"content-type", b"application/json")])
    elif path.startswith("/echo"):
        await _echo(scope, receive, send)
    elif path == "/hello":
        await _respond(send, 200, b"hello", [*_TEXT, (b"content-length", b"5")])
    elif path in ("/status/204", "/status/304"):
        await send({"type": "http.response.start", "status": int(path[-3:]), "headers": []})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/set-cookies":
        cookies = [(b"set-cookie", b"a=1; Path=/"), (b"set-cookie", b"b=2; Path=/")]
        await _respond(send, 200, b"two cookies", [*_TEXT, *cookies])
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": _TEXT})
        await send({"type": "http.response.body", "body": b"first chunk\n", "more_body": True})
        opened = await await_gate(int(query["gate"]))
        last = f"last chunk, gate {'opened' if opened else 'closed'}\n".encode()
        await send({"type": "http.response.body", "body": last})
    elif path == "/error-before":
        raise RuntimeError("conformance app: error before http.response.start")
    elif path == "/error-after":
        await send({"type": "http.response.start", "status": 200, "headers": _TEXT})
        await send({"type": "http.response.body", "body": b"partial body\n", "more_body": True})
        raise RuntimeError("conformance app: error after the first body chunk")
    elif path == "/no-start":
        return
    elif path == "/pathsend":
        if "http.response.pathsend" not in (scope.get("extensions") or {}):
            await _respond(send, 501, b"http.response.pathsend is not advertised")
            return
        headers = [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(len(FILE_BODY)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": PATHSEND_FILE})
    elif path == "/disconnect":
        await _disconnect(query["key"], int(query["gate"]), receive, send)
    elif path == "/lifespan":
        state = scope.get("state")
        facts: dict[str, Any] = {"has_state": state is not None}
        if state is not None:
            facts.update(
                started=state.get("started"),
                leaked=state.get("leak"),
                hits=len(state.get("hits", [])),
            )
            state["leak"] = "top-level assignments must not reach the next request"
            state.get("hits", []).append(1)
        await _respond(
            send, 200, json.dumps(facts).encode(), [(b"content-type", b"application/json")]
        )
    else:
        await _respond(send, 404, b"not found")


application = mounted_wsgi(wrap_asgi_app(app))
