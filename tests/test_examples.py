"""Every example under ``examples/`` runs here: recipes in-process, servers for real."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bridge import LifespanManager
from examples.migration import create_app
from examples.test_recipes import (
    test_fastapi_with_werkzeug_client,
    test_flask_with_httpx_async_client,
)
from tests.cli_process import bridge_serve

__all__ = ["test_fastapi_with_werkzeug_client", "test_flask_with_httpx_async_client"]


@pytest.mark.anyio
async def test_example_migration_in_process() -> None:
    async with LifespanManager(create_app()) as manager:
        transport = httpx.ASGITransport(manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            item = (await client.get("/api/items/1")).json()
            unknown_item = await client.get("/api/items/99")  # FastAPI 404 → Flask 404
            user = (await client.get("/api/users/3")).json()
            echo = (await client.post("/api/echo", content=b"body")).json()
            about = (await client.get("/about")).json()
    assert item == {"served_by": "fastapi", "item": "hammer", "root_path": "/api"}
    assert unknown_item.status_code == 404
    assert "<title>404 Not Found</title>" in unknown_item.text  # Flask's page
    assert user == {"served_by": "flask", "user": 3}
    assert echo == {"served_by": "flask", "body": "body"}
    assert about == {"served_by": "flask", "script_name": ""}


def test_example_django_on_uvicorn() -> None:
    # A subprocess: Django settings are process-wide, and other tests configure their own.
    with bridge_serve(["examples.django_site.wsgi:application"]) as server:
        client = httpx.Client(base_url=server.base_url, timeout=10)
        with client:
            assert client.get("/").text == "hello from django at /"
            css = client.get("/static/site.css")
            assert css.status_code == 200
            assert "font-family" in css.text
            admin = client.get("/admin/")
            assert admin.status_code == 302
            assert admin.headers["location"] == "/admin/login/?next=/admin/"


def test_example_django_admin_login_page(tmp_path: Path) -> None:
    # Its own temp directory, to see that the example removes its database.
    env = {"TMPDIR": str(tmp_path)}
    with bridge_serve(["examples.django_site.wsgi:application"], env=env) as server:
        login = httpx.get(server.base_url + "/admin/login/", timeout=10)
        assert login.status_code == 200
        assert "Django administration" in login.text  # templates, sessions and the DB work
        assert [p.name.startswith("bridge-django-") for p in tmp_path.iterdir()] == [True]
    assert list(tmp_path.iterdir()) == []
