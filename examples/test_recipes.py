"""Testing recipes: test an app of one world with the other world's test client.

- A FastAPI (ASGI) app through :class:`~bridge.AsgiToWsgi` with Werkzeug's
  WSGI test client: lifespan runs on entering ``with AsgiToWsgi(...)``.
- A Flask (WSGI) app through :class:`~bridge.WsgiToAsgi` with
  ``httpx.AsyncClient`` and ``httpx.ASGITransport``.

Run them with ``pytest examples/test_recipes.py``.
"""

from __future__ import annotations

import httpx
import pytest
from werkzeug.test import Client

from bridge import AsgiToWsgi, WsgiToAsgi
from examples.fastapi_on_waitress import app as fastapi_app
from examples.migration import legacy as flask_app


def test_fastapi_with_werkzeug_client() -> None:
    with AsgiToWsgi(fastapi_app) as wsgi_app:  # lifespan startup here, shutdown on exit
        client = Client(wsgi_app)
        response = client.get("/", buffered=True)
        assert response.status_code == 200
        assert response.text == "hello from fastapi on waitress"
        echoed = client.post("/echo", data=b"ping", buffered=True)
        assert echoed.text == "ping"


@pytest.mark.anyio
async def test_flask_with_httpx_async_client() -> None:
    transport = httpx.ASGITransport(WsgiToAsgi(flask_app))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/")
        assert response.text == "legacy home"
        echoed = await client.post("/api/echo", content=b"hello")
        assert echoed.json() == {"served_by": "flask", "body": "hello"}
