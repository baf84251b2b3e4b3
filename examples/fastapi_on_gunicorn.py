"""A FastAPI app served by gunicorn through ``bridge.AsgiToWsgi``.

Run it from the repository root, then open http://127.0.0.1:8000/::

    gunicorn -k gthread --threads 8 examples.fastapi_on_gunicorn:application

``AsgiToWsgi(app)`` *is* a WSGI app. It plays the ASGI server for FastAPI: in
each worker process it runs the app's lifespan before the first request (so the
``lifespan`` below works, with ``--preload`` too) and its shutdown when the
worker exits.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from bridge import AsgiToWsgi


class State(TypedDict):
    greeting: str


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[State]:
    # Open pools and clients here; requests see the state through request.state.
    yield {"greeting": f"Hello from FastAPI in gunicorn worker {os.getpid()}"}


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def index(request: Request) -> dict[str, str]:
    return {"message": request.state.greeting}


@app.get("/count/{n}")
async def count(n: int) -> StreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        for i in range(1, n + 1):
            yield f"{i}\n".encode()

    return StreamingResponse(lines(), media_type="text/plain")


application = AsgiToWsgi(app)
