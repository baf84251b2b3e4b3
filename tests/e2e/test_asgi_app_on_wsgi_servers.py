"""An ASGI framework (FastAPI on Starlette) through an ASGI-in-WSGI adapter on real WSGI servers.

The adapter is the ASGI server here: it must run the app's lifespan in every
worker process, so routes see the resource startup created.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import pytest

from compat_suite.deployments import Deployment, Live, deploy
from compat_suite.gate import Gate
from tests.e2e.harness import (
    MiB,
    deployments,
    e2e_adapters,
    read_gated_stream,
    skip_unless_adapter_exists,
    upload,
)

SERVERS = ["gunicorn-sync", "gunicorn-gthread", "gunicorn-preload", "waitress", "wsgiref"]
APPS = ["fastapi"]

on_every_server = pytest.mark.parametrize(
    "live", deployments("asgi-in-wsgi", SERVERS, APPS), indirect=True, scope="module"
)


@on_every_server
def test_get(live: Live) -> None:
    response = live.client.get("/")
    assert response.status_code == 200
    assert response.text == "hello from fastapi"
    assert response.headers["content-type"].startswith("text/plain")


@on_every_server
def test_lifespan_state_reaches_routes(live: Live) -> None:
    first = live.client.get("/lifespan")
    assert first.status_code == 200, first.text
    second = live.client.get("/lifespan").json()
    assert first.json()["lifespan_pid"] == first.json()["pid"]
    assert second["closed"] is False
    if second["pid"] == first.json()["pid"]:
        # The state dict is copied per request, the resource in it is shared.
        assert second["hits"] > first.json()["hits"]


@on_every_server
def test_app_state_set_in_lifespan(live: Live) -> None:
    response = live.client.get("/app-state")
    assert response.status_code == 200, response.text
    assert response.json()["lifespan_pid"] == response.json()["pid"]


@on_every_server
def test_post_json(live: Live) -> None:
    document = {"hello": "wörld", "n": [1, 2, 3]}
    response = live.client.post("/json", json=document)
    assert response.status_code == 200
    assert response.json() == {"json": document}


@on_every_server
def test_streamed_response_arrives_before_it_ends(live: Live) -> None:
    received = read_gated_stream(live.client)
    assert received == b"first chunk\nlast chunk, gate opened\n"


@on_every_server
@pytest.mark.timeout(120)
def test_upload_with_content_length(live: Live) -> None:
    upload(live.client, 20 * MiB)


@on_every_server
@pytest.mark.timeout(120)
def test_upload_chunked(live: Live) -> None:
    if live.deployment.server == "wsgiref":
        pytest.skip("wsgiref.simple_server does not decode chunked request bodies")
    upload(live.client, 20 * MiB, chunked=True)


@on_every_server
def test_download(live: Live) -> None:
    response = live.client.get("/download/1000000")
    assert response.status_code == 200
    assert response.headers["content-length"] == "1000000"
    assert response.content == b"d" * 1_000_000


@on_every_server
def test_not_found(live: Live) -> None:
    response = live.client.get("/no/such/route")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


@on_every_server
def test_exception_becomes_500(live: Live) -> None:
    response = live.client.get("/error")
    assert response.status_code == 500
    # The worker keeps serving.
    assert live.client.get("/").status_code == 200


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(Deployment("gunicorn-preload", "fastapi", adapter), id=f"preload-{adapter}")
        for adapter in e2e_adapters("asgi-in-wsgi")
    ],
)
def preloaded(request: pytest.FixtureRequest) -> Iterator[Live]:
    """FastAPI imported once in gunicorn's arbiter (``--preload``), then forked into 2 workers."""
    skip_unless_adapter_exists(request.param)
    with deploy(request.param, workers=2) as live:
        yield live


def test_preloaded_workers_each_run_lifespan(preloaded: Live) -> None:
    # Sync workers serve one request at a time: while worker A is held at the
    # gate, the next request can only be answered by worker B.
    with Gate() as gate, concurrent.futures.ThreadPoolExecutor(1) as pool:
        held = pool.submit(preloaded.client.get, "/lifespan/after-gate", params={"gate": gate.port})
        gate.wait_for_arrival()
        other = preloaded.client.get("/lifespan")
        gate.open()
        first = held.result(timeout=30)
    assert first.status_code == 200, first.text
    assert other.status_code == 200, other.text
    a, b = first.json(), other.json()
    assert a["gate_opened"] is True
    assert a["pid"] != b["pid"], "both requests were served by one worker"
    assert a["lifespan_pid"] == a["pid"]
    assert b["lifespan_pid"] == b["pid"]


@pytest.mark.parametrize(
    "deployment",
    [
        pytest.param(Deployment(server, "fastapi", adapter), id=f"{server}-fastapi-{adapter}")
        for adapter in e2e_adapters("asgi-in-wsgi")
        # granian's workers are multiprocessing children, which skip atexit.
        for server in [*SERVERS, "granian-wsgi"]
    ],
)
def test_lifespan_shutdown_runs_when_the_server_stops(
    deployment: Deployment, tmp_path: Path
) -> None:
    skip_unless_adapter_exists(deployment)
    events = tmp_path / "lifespan.log"
    with deploy(deployment, env={"COMPAT_LIFESPAN_LOG": str(events)}) as live:
        response = live.client.get("/lifespan")
        assert response.status_code == 200, response.text
        served_by = response.json()["pid"]
    # The server has stopped: each worker that started the app also shut it down.
    lines = events.read_text(encoding="ascii").splitlines()
    started = {int(line.split()[1]) for line in lines if line.startswith("startup ")}
    stopped = {int(line.split()[1]) for line in lines if line.startswith("shutdown ")}
    assert served_by in started, lines
    assert stopped == started, lines
