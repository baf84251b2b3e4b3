"""Helpers of the end-to-end tests: which deployments to run, known peer failures,
payloads and uploads, and the gated stream.

Adapters come from ``BRIDGE_E2E_ADAPTERS`` (comma-separated, default ``bridge``),
e.g. ``BRIDGE_E2E_ADAPTERS=bridge,a2wsgi,asgiref``; names that have no adapter in
a direction (asgiref has no ASGI-in-WSGI adapter) are left out of that direction.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import httpx
import pytest

import bridge
from compat_suite.adapters import ASGI_IN_WSGI_ADAPTERS, WSGI_IN_ASGI_ADAPTERS
from compat_suite.deployments import Deployment
from compat_suite.gate import Gate
from compat_suite.servers import SERVERS

if TYPE_CHECKING:
    from _pytest.mark.structures import ParameterSet

ADAPTERS_ENV = "BRIDGE_E2E_ADAPTERS"
Direction = Literal["wsgi-in-asgi", "asgi-in-wsgi"]

MiB = 1024 * 1024
GiB = 1024 * MiB


def e2e_adapters(direction: Direction) -> list[str]:
    """The adapters to test in ``direction``, from ``BRIDGE_E2E_ADAPTERS``."""
    requested = [
        name.strip() for name in os.environ.get(ADAPTERS_ENV, "bridge").split(",") if name.strip()
    ]
    known = WSGI_IN_ASGI_ADAPTERS if direction == "wsgi-in-asgi" else ASGI_IN_WSGI_ADAPTERS
    return [name for name in requested if name in known]


@dataclass(frozen=True)
class KnownFailure:
    """A peer adapter's documented failure; ``"*"`` matches anything.

    ``test`` is a test function's name. ``run=False`` marks deployments that hang
    (the tests are reported as xfail without running); ``strict=False`` marks
    failures that depend on timing.
    """

    adapter: str
    reason: str
    server: str = "*"
    app: str = "*"
    test: str = "*"
    run: bool = True
    strict: bool = True

    def matches(self, deployment: Deployment, test: str) -> bool:
        """Whether this failure is expected for ``test`` on ``deployment``."""
        return all(
            pattern in ("*", value)
            for pattern, value in (
                (self.adapter, deployment.adapter),
                (self.server, deployment.server),
                (self.app, deployment.app),
                (self.test, test),
            )
        )


_NO_TRIO = "asyncio-only, so on hypercorn's trio worker every request is a 500"
_GRANIAN_RECEIVE = (
    "hands granian's receive() awaitable to asyncio.run_coroutine_threadsafe, which "
    "requires a coroutine: every request with a body is a 500"
)
_NO_INPUT_TERMINATED = (
    "never sets wsgi.input_terminated, so Werkzeug reads a chunked body (no "
    "Content-Length) as empty (SPEC A25)"
)
_NO_LIFESPAN = "ASGIMiddleware never runs the lifespan protocol (SPEC E1-E6)"

#: What the peers get wrong, seen through real servers. Never lists ``bridge``.
KNOWN_PEER_FAILURES: tuple[KnownFailure, ...] = (
    # WSGI app on an ASGI server.
    KnownFailure("a2wsgi", _NO_TRIO, server="hypercorn-trio"),
    KnownFailure("asgiref", _NO_TRIO, server="hypercorn-trio"),
    *(
        KnownFailure("a2wsgi", _GRANIAN_RECEIVE, server="granian-asgi", test=test)
        for test in (
            "test_post_form",
            "test_post_json",
            "test_upload_50_mib_with_content_length",
            "test_upload_50_mib_chunked",
        )
    ),
    KnownFailure("a2wsgi", _NO_INPUT_TERMINATED, app="flask", test="test_upload_50_mib_chunked"),
    KnownFailure("asgiref", _NO_INPUT_TERMINATED, app="flask", test="test_upload_50_mib_chunked"),
    KnownFailure(
        "asgiref",
        "passes Django's Set-Cookie value ' flavour=oatmeal; Path=/' (leading space, from "
        "SimpleCookie.output(header='')) through unstripped; uvicorn's h11 rejects it and "
        "drops the connection",
        server="uvicorn",
        app="django",
        test="test_set_cookie_headers_stay_separate",
    ),
    KnownFailure(
        "asgiref",
        "on uvicorn, a random request now and then is a 500 'CurrentThreadExecutor already "
        "quit or is broken' (the asgiref >= 3.9 regression of asgiref#491/#526)",
        server="uvicorn",
        strict=False,
    ),
    # ASGI app on a WSGI server.
    KnownFailure(
        "a2wsgi",
        "ASGIMiddleware starts its event-loop thread when constructed; under --preload that "
        "is in the arbiter, so forked workers hold a loop no thread runs and every request "
        "hangs",
        server="gunicorn-preload",
        run=False,
    ),
    KnownFailure("a2wsgi", _NO_LIFESPAN, test="test_lifespan_state_reaches_routes"),
    KnownFailure("a2wsgi", _NO_LIFESPAN, test="test_app_state_set_in_lifespan"),
    KnownFailure("a2wsgi", _NO_LIFESPAN, test="test_lifespan_shutdown_runs_when_the_server_stops"),
    *(
        KnownFailure(
            "a2wsgi",
            "reads CONTENT_LENGTH bytes only and ignores wsgi.input_terminated, which "
            "gunicorn sets for a chunked body: the app sees an empty body",
            server=server,
            test="test_upload_chunked",
        )
        for server in ("gunicorn-sync", "gunicorn-gthread")
    ),
)


def known_failure(deployment: Deployment, test: str) -> KnownFailure | None:
    """The first known peer failure for ``test`` on ``deployment``, if any."""
    if deployment.adapter == "bridge":
        return None
    for failure in KNOWN_PEER_FAILURES:
        if failure.matches(deployment, test):
            return failure
    return None


# Our adapter a deployment needs, by the interface of its server.
_OUR_ADAPTER = {"asgi": "WsgiToAsgi", "wsgi": "AsgiToWsgi"}


def skip_unless_adapter_exists(deployment: Deployment) -> None:
    """Skip while ``bridge`` does not export the adapter ``deployment`` needs yet."""
    needed = _OUR_ADAPTER[SERVERS[deployment.server].interface]
    if deployment.adapter == "bridge" and not hasattr(bridge, needed):
        pytest.skip(f"bridge does not export {needed} yet")


def deployments(
    direction: Direction, servers: Sequence[str], apps: Sequence[str]
) -> list[ParameterSet]:
    """Parameters for the ``live`` fixture: every server × app × selected adapter."""
    return [
        pytest.param(Deployment(server, app, adapter), id=f"{server}-{app}-{adapter}")
        for adapter in e2e_adapters(direction)
        for app in apps
        for server in servers
    ]


@dataclass
class Payload:
    """A request body generated while it is sent, hashed on the way.

    Each 64 KiB chunk starts with its index, so lost, repeated or reordered
    chunks change the digest.
    """

    size: int
    chunk_size: int = 64 * 1024

    def __post_init__(self) -> None:
        self._digest = hashlib.sha256()
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        filler = hashlib.sha256(b"bridge").digest() * (self.chunk_size // 32 + 1)
        index = 0
        while self.sent < self.size:
            length = min(self.chunk_size, self.size - self.sent)
            chunk = (index.to_bytes(8, "big") + filler)[:length]
            self._digest.update(chunk)
            self.sent += length
            index += 1
            yield chunk

    @property
    def sha256(self) -> str:
        """Hex digest of everything yielded so far."""
        return self._digest.hexdigest()


def upload(client: httpx.Client, size: int, *, chunked: bool = False) -> None:
    """POST a :class:`Payload` of ``size`` bytes to ``/upload``; the app must
    report every byte, in order (its length and SHA-256).

    :param chunked: send no ``Content-Length``, so the client sends the body
        chunked; otherwise declare it.
    """
    payload = Payload(size)
    headers = {}
    if not chunked:
        headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
    response = client.post("/upload", content=iter(payload), headers=headers)
    if chunked:
        assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 200, response.text
    assert response.json() == {"bytes": size, "sha256": payload.sha256}


def read_gated_stream(client: httpx.Client) -> bytes:
    """GET ``/stream``: the app yields its first line, then waits at a gate only
    this test opens. The first line must arrive while the app still waits (a
    buffering adapter would never deliver it); then the gate opens and the rest
    is read. Returns every byte received.
    """
    with (
        Gate() as gate,
        client.stream("GET", "/stream", params={"gate": gate.port}) as response,
    ):
        assert response.status_code == 200
        chunks = response.iter_raw()
        received = b""
        try:
            while b"\n" not in received:
                received += next(chunks)
        except httpx.ReadTimeout:
            pytest.fail("the first chunk did not arrive while the app was still running")
        assert received == b"first chunk\n"
        gate.open()
        return received + b"".join(chunks)
