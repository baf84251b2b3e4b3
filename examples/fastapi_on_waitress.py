"""A FastAPI app on waitress, a WSGI server, through :class:`~bridge.AsgiToWsgi`.

``AsgiToWsgi`` runs the app's lifespan on its private event loop before the
first request, and each request gets a copy of the lifespan state. Run it::

    python examples/fastapi_on_waitress.py          # or:
    python -m bridge serve examples.fastapi_on_waitress:app --server waitress
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

from bridge import AsgiToWsgi


class State(TypedDict):
    greeting: str


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[State]:
    yield {"greeting": "hello from fastapi on waitress"}


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def index(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.state.greeting)


@app.post("/echo")
async def echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse(await request.body())


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for number in range(3):
            yield f"chunk {number}\n".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


#: The WSGI app a WSGI server runs (``waitress-serve examples.fastapi_on_waitress:application``).
application = AsgiToWsgi(app)

if __name__ == "__main__":
    import waitress

    with application:  # lifespan startup now, shutdown when waitress stops
        waitress.serve(application, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
