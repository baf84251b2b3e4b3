"""A FastAPI app with a lifespan resource; ``fastapi_app:application`` serves it on WSGI servers.

The lifespan creates a :class:`Resource` (it records the pid of the process that
ran startup) and hands it to requests two ways: as lifespan *state* (the copy in
``scope["state"]``, read through ``request.state``) and on ``app.state``. Routes
that need it answer 500 if lifespan never ran. ``COMPAT_LIFESPAN_LOG`` names a
file to which startup and shutdown append ``"<event> <pid>"`` lines.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypedDict

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.responses import StreamingResponse

from compat_suite.adapters import asgi_to_wsgi
from compat_suite.apps import CHUNK_SIZE
from compat_suite.gate import await_gate

LIFESPAN_LOG_ENV = "COMPAT_LIFESPAN_LOG"


class Resource:
    """What a real app would open in its lifespan (a pool, a client): here a hit counter."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.closed = False
        self._hits = 0
        self._lock = threading.Lock()

    def hit(self) -> int:
        """Count one use and return the total so far."""
        with self._lock:
            self._hits += 1
            return self._hits


class State(TypedDict):
    resource: Resource


def _log_lifespan(event: str) -> None:
    path = os.environ.get(LIFESPAN_LOG_ENV)
    if path:
        with open(path, "a", encoding="ascii") as log:
            log.write(f"{event} {os.getpid()}\n")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[State]:
    resource = Resource()
    app.state.resource = resource
    _log_lifespan("startup")
    yield {"resource": resource}
    resource.closed = True
    _log_lifespan("shutdown")


app = FastAPI(lifespan=lifespan)


def _describe(resource: Resource) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "lifespan_pid": resource.pid,
        "closed": resource.closed,
        "hits": resource.hit(),
    }


@app.get("/")
async def index() -> PlainTextResponse:
    return PlainTextResponse("hello from fastapi")


@app.get("/pid")
async def pid() -> dict[str, int]:
    return {"pid": os.getpid()}


@app.get("/lifespan")
async def lifespan_state(request: Request) -> dict[str, Any]:
    # Lifespan state: the server (here, the adapter) copies it into scope["state"].
    resource: Resource = request.state.resource
    return _describe(resource)


@app.get("/app-state")
async def app_state(request: Request) -> dict[str, Any]:
    resource: Resource = request.app.state.resource
    return _describe(resource)


@app.get("/lifespan/after-gate")
async def lifespan_after_gate(request: Request, gate: int) -> dict[str, Any]:
    opened = await await_gate(gate)
    resource: Resource = request.state.resource
    return {**_describe(resource), "gate_opened": opened}


@app.post("/json")
async def json_echo(payload: dict[str, Any]) -> dict[str, Any]:
    return {"json": payload}


@app.post("/upload")
async def upload(request: Request) -> dict[str, Any]:
    # request.stream(): the body as it arrives, never held whole.
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.stream():
        digest.update(chunk)
        size += len(chunk)
    return {"bytes": size, "sha256": digest.hexdigest()}


@app.get("/stream")
async def stream(gate: int) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        yield b"first chunk\n"
        opened = await await_gate(gate)
        yield f"last chunk, gate {'opened' if opened else 'closed'}\n".encode()

    return StreamingResponse(body(), media_type="text/plain")


@app.get("/download/{size}")
async def download(size: int) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        block = b"d" * CHUNK_SIZE
        remaining = size
        while remaining > 0:
            yield block[:remaining] if remaining < CHUNK_SIZE else block
            remaining -= CHUNK_SIZE

    return StreamingResponse(
        body(),
        media_type="application/octet-stream",
        headers={"Content-Length": str(size)},
    )


@app.get("/error")
async def error() -> Response:
    raise RuntimeError("boom from fastapi")


@app.exception_handler(KeyError)
async def missing_state(request: Request, exc: KeyError) -> JSONResponse:
    return JSONResponse({"detail": f"missing: {exc}"}, status_code=500)


application = asgi_to_wsgi(app)
