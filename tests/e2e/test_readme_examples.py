"""The examples the README points at, run as their docstrings say."""

from __future__ import annotations

import sys

import httpx

from compat_suite.servers import launch, serve


def test_flask_on_uvicorn_script() -> None:
    with (
        launch(
            "flask-on-uvicorn",
            lambda host, port: [sys.executable, "examples/flask_on_uvicorn.py", host, str(port)],
        ) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        index = client.get("/")
        assert index.status_code == 200
        assert index.text.startswith("Hello from Flask")
        assert client.get("/hello/ada", params={"x": "1"}).json() == {
            "hello": "ada",
            "query": {"x": "1"},
        }
        assert client.get("/count/3").text == "1\n2\n3\n"


def test_fastapi_on_gunicorn_gthread() -> None:
    with (
        serve("gunicorn-gthread", "examples.fastapi_on_gunicorn:application") as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        index = client.get("/")
        assert index.status_code == 200, index.text
        assert index.json()["message"].startswith("Hello from FastAPI in gunicorn worker")
        assert client.get("/count/3").text == "1\n2\n3\n"
