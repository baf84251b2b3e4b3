"""Strangler-fig migration: a legacy Flask app and new FastAPI routes under one server.

Routes move from Flask to FastAPI one at a time. The :class:`~bridge.Dispatcher`
mounts the FastAPI app at ``/api`` with ``fallthrough_on_404=True``, and the
Flask app as the fallback:

- ``/api/items/{id}`` is already migrated: FastAPI answers it, with a
  ``store`` from its own lifespan state.
- ``/api/users/{id}`` and ``POST /api/echo`` are not: FastAPI answers 404, so
  the dispatcher replays the request (body included) to Flask.
- ``/`` and ``/about`` never match the mount: Flask serves them directly.

Serve it on uvicorn (the Flask app runs in ``WsgiToAsgi``'s threads)::

    python -m bridge serve examples.migration:app
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypedDict

from fastapi import FastAPI, HTTPException, Request
from flask import Flask, jsonify
from flask import Response as FlaskResponse
from flask import request as flask_request

from bridge import Dispatcher, Mount

# -- the legacy app ---------------------------------------------------------

legacy = Flask("legacy")


@legacy.get("/")
def home() -> FlaskResponse:
    return FlaskResponse("legacy home", content_type="text/plain; charset=utf-8")


@legacy.get("/about")
def about() -> FlaskResponse:
    # SCRIPT_NAME is "" for the fallback: it is mounted at the root.
    return jsonify(served_by="flask", script_name=flask_request.script_root)


@legacy.get("/api/users/<int:user_id>")
def legacy_user(user_id: int) -> FlaskResponse:
    return jsonify(served_by="flask", user=user_id)


@legacy.post("/api/echo")
def legacy_echo() -> FlaskResponse:
    return jsonify(served_by="flask", body=flask_request.get_data(as_text=True))


# -- the new app --------------------------------------------------------------


class State(TypedDict):
    store: dict[int, str]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[State]:
    # Only the FastAPI app sees this state: the dispatcher keeps each mount's apart.
    yield {"store": {1: "hammer", 2: "saw"}}


api = FastAPI(lifespan=lifespan)


@api.get("/items/{item_id}")
async def item(item_id: int, request: Request) -> dict[str, Any]:
    store: dict[int, str] = request.state.store
    if item_id not in store:
        # A 404 from a *route* falls through too: the legacy app may know it.
        raise HTTPException(status_code=404)
    return {"served_by": "fastapi", "item": store[item_id], "root_path": request.scope["root_path"]}


# -- both, behind one ASGI app ---------------------------------------------------


def create_app() -> Dispatcher:
    """Build the combined app.

    Served by ``python -m bridge serve examples.migration:create_app --factory``.
    """
    return Dispatcher([Mount("/api", api, fallthrough_on_404=True)], fallback=legacy)


app = create_app()
