"""bridge.cli: ``python -m bridge serve`` on real servers, ``inspect``, and the errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bridge.cli import AppLoadError, load_app
from tests.cli_process import ROOT, bridge_serve, run_bridge


def test_cli_serves_flask_on_uvicorn() -> None:
    with bridge_serve(["examples.migration:legacy"]) as server:
        response = httpx.get(server.base_url + "/", timeout=10)
        assert response.text == "legacy home"
        about = httpx.get(server.base_url + "/about", timeout=10).json()
        assert about == {"served_by": "flask", "script_name": ""}
        assert "WsgiToAsgi" in server.log() or "wsgi" in server.log()


def test_cli_serves_fastapi_on_waitress() -> None:
    args = ["examples.fastapi_on_waitress:app", "--server", "waitress"]
    with bridge_serve(args) as server, httpx.Client(base_url=server.base_url) as client:
        # The lifespan state reached the request: AsgiToWsgi ran startup.
        assert client.get("/").text == "hello from fastapi on waitress"
        assert client.post("/echo", content=b"ping").text == "ping"
        assert client.get("/stream").text == "chunk 0\nchunk 1\nchunk 2\n"


def test_cli_serves_the_migration_app() -> None:
    args = ["examples.migration:create_app", "--factory"]
    with bridge_serve(args) as server, httpx.Client(base_url=server.base_url) as client:
        assert client.get("/api/items/2").json() == {
            "served_by": "fastapi",
            "item": "saw",
            "root_path": "/api",
        }
        assert client.get("/api/users/5").json() == {"served_by": "flask", "user": 5}
        assert client.post("/api/echo", content=b"b" * 70_000).json()["body"] == "b" * 70_000


def test_cli_serves_a_file_path_target_on_hypercorn() -> None:
    target = "examples/fastapi_on_waitress.py:app"
    with bridge_serve([target, "--server", "hypercorn"]) as server:
        assert httpx.get(server.base_url + "/", timeout=10).text.startswith("hello")


ASGI2_APP = """
import json


class App:
    def __init__(self, scope):
        self.scope = scope

    async def __call__(self, receive, send):
        if self.scope["type"] != "http":
            raise RuntimeError("no lifespan")
        body = json.dumps(self.scope["asgi"]).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
"""


@pytest.mark.parametrize("server_name", ["uvicorn", "hypercorn"])
def test_cli_tells_an_asgi2_app_its_version(tmp_path: Path, server_name: str) -> None:
    # SPEC F4: served on an ASGI host, an ASGI 2 app is told "2.0".
    (tmp_path / "asgi2_app.py").write_text(ASGI2_APP, encoding="utf-8")
    args = [f"{tmp_path / 'asgi2_app.py'}:App", "--server", server_name]
    with bridge_serve(args) as server:
        asgi = httpx.get(server.base_url + "/", timeout=10).json()
    assert asgi["version"] == "2.0"


EXIT_HOOK_APP = """
import atexit
import os
from pathlib import Path

atexit.register(Path(os.environ["BRIDGE_TEST_EXIT_MARKER"]).write_text, "atexit ran")


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"up"]
"""


@pytest.mark.parametrize(
    "server_name", ["uvicorn", "hypercorn", "granian", "gunicorn", "waitress", "wsgiref"]
)
def test_cli_sigterm_exits_0_after_the_exit_hooks(tmp_path: Path, server_name: str) -> None:
    # embedded.py rule 4: a polite stop is a clean exit on every server.
    # uvicorn re-raises the SIGTERM it stopped on, which by default killed
    # the process before its atexit hooks ran.
    (tmp_path / "exit_hook_app.py").write_text(EXIT_HOOK_APP, encoding="utf-8")
    marker = tmp_path / "marker"
    args = [f"{tmp_path / 'exit_hook_app.py'}:app", "--server", server_name]
    with bridge_serve(args, env={"BRIDGE_TEST_EXIT_MARKER": str(marker)}) as server:
        assert httpx.get(server.base_url + "/", timeout=10).text == "up"
        process = server.process
    assert process.returncode == 0
    assert marker.read_text(encoding="utf-8") == "atexit ran"


def test_cli_inspect_output() -> None:
    result = run_bridge(["inspect", "examples.migration:app"])
    assert result.returncode == 0, result.stderr
    assert "interface: asgi3" in result.stdout
    assert "asgi version: 3" in result.stdout
    assert "lifespan: supported" in result.stdout
    result = run_bridge(["inspect", "examples.migration:legacy"])
    assert result.returncode == 0, result.stderr
    assert "interface: wsgi" in result.stdout
    assert "lifespan: none" in result.stdout


def test_cli_missing_server_is_a_one_line_error() -> None:
    code = (
        "import sys; sys.modules['granian'] = None; "
        "from bridge.cli import main; "
        "sys.exit(main(['serve', 'examples.migration:app', '--server', 'granian']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "bridge: error: server 'granian' is not installed; "
        "install it with: pip install 'asgi-wsgi-bridge[servers]'"
    ]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module:app", "cannot import 'no_such_module': ModuleNotFoundError"),
        ("examples.migration:nope", "module 'examples.migration' has no attribute 'nope'"),
        ("examples/missing.py:app", "no such file: examples/missing.py"),
    ],
)
def test_cli_bad_import_is_a_one_line_error(target: str, message: str) -> None:
    result = run_bridge(["serve", target])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert message in lines[0]


def test_cli_unsupported_option_is_an_error() -> None:
    result = run_bridge(
        ["serve", "examples.migration:legacy", "--server", "waitress", "--workers", "2"]
    )
    assert result.returncode == 2
    assert "--workers is not supported" in result.stderr


def test_load_app_factory_and_dotted_attribute() -> None:
    app = load_app("examples.migration:api.title")
    assert app == "FastAPI"
    from fastapi import FastAPI

    assert isinstance(load_app("examples.migration:FastAPI", factory=True), FastAPI)
    with pytest.raises(AppLoadError, match=r"factory .* raised TypeError"):
        load_app("examples.migration:legacy_user", factory=True)


@pytest.mark.parametrize("server_name", ["uvicorn", "hypercorn", "granian"])
def test_cli_serves_a_wsgi_app_with_several_workers(server_name: str) -> None:
    # With --workers > 1 each worker process rebuilds the (bridged) app itself.
    args = ["examples.migration:legacy", "--server", server_name, "--workers", "2"]
    with bridge_serve(args) as server, httpx.Client(base_url=server.base_url) as client:
        for _ in range(4):
            response = client.get("/about")
            assert response.json() == {"served_by": "flask", "script_name": ""}
