"""A Starlette app with lifespan state; ``starlette_app:application`` serves it on WSGI servers.

The same routes as :mod:`compat_suite.apps.fastapi_app` where they overlap,
written with Starlette's own routing, behind the matrix's adapter.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from compat_suite.apps import CHUNK_SIZE
from compat_suite.gate import await_gate
from compat_suite.matrix.variants import wrap_asgi_app


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    yield {"resource": "opened in lifespan"}


async def index(request: Request) -> Response:
    return PlainTextResponse("hello from starlette")


async def lifespan_state(request: Request) -> Response:
    return JSONResponse({"resource": request.state.resource})


async def json_echo(request: Request) -> Response:
    return JSONResponse({"json": await request.json()})


async def upload(request: Request) -> Response:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.stream():
        digest.update(chunk)
        size += len(chunk)
    return JSONResponse({"bytes": size, "sha256": digest.hexdigest()})


async def stream(request: Request) -> Response:
    gate = int(request.query_params["gate"])

    async def body() -> AsyncIterator[bytes]:
        yield b"first chunk\n"
        opened = await await_gate(gate)
        yield f"last chunk, gate {'opened' if opened else 'closed'}\n".encode()

    return StreamingResponse(body(), media_type="text/plain")


async def download(request: Request) -> Response:
    size = int(request.path_params["size"])

    async def body() -> AsyncIterator[bytes]:
        remaining = size
        while remaining > 0:
            yield b"d" * min(CHUNK_SIZE, remaining)
            remaining -= CHUNK_SIZE

    return StreamingResponse(
        body(), media_type="application/octet-stream", headers={"Content-Length": str(size)}
    )


async def unicode_path(request: Request) -> Response:
    return JSONResponse({"name": request.path_params["name"], "path": request.url.path})


async def query(request: Request) -> Response:
    return JSONResponse(
        {
            "args": {k: request.query_params.getlist(k) for k in request.query_params},
            "raw": request.scope["query_string"].decode("latin-1"),
        }
    )


async def cookies(request: Request) -> Response:
    return JSONResponse({"cookies": dict(request.cookies)})


async def set_cookie(request: Request) -> Response:
    response = JSONResponse({"ok": True})
    response.set_cookie("flavour", "oatmeal")
    response.set_cookie("session", "s3cr3t", httponly=True)
    return response


async def error(request: Request) -> Response:
    raise RuntimeError("boom from starlette")


app = Starlette(
    lifespan=lifespan,
    routes=[
        Route("/", index),
        Route("/lifespan", lifespan_state),
        Route("/json", json_echo, methods=["POST"]),
        Route("/upload", upload, methods=["POST"]),
        Route("/stream", stream),
        Route("/download/{size:int}", download),
        Route("/unicode/{name}", unicode_path),
        Route("/query", query),
        Route("/cookies", cookies),
        Route("/set-cookie", set_cookie),
        Route("/error", error),
    ],
)
application = wrap_asgi_app(app)
