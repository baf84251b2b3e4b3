"""A deployment is one app, through one adapter, on one real server.

``deploy()`` starts it and hands back the running server together with an HTTP
client bound to it; the end-to-end tests, the matrix and the benchmarks share it.
No pytest here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from compat_suite.adapters import ADAPTER_ENV
from compat_suite.apps import TARGETS
from compat_suite.servers import RunningServer, serve

__all__ = ["Deployment", "Live", "deploy"]


@dataclass(frozen=True)
class Deployment:
    """Which server runs which app (a key of ``compat_suite.apps.TARGETS``) via which adapter."""

    server: str
    app: str
    adapter: str

    @property
    def id(self) -> str:
        """``server-app-adapter``, the matrix's id prefix."""
        return f"{self.server}-{self.app}-{self.adapter}"


@dataclass
class Live:
    """A running deployment and an HTTP client whose ``base_url`` points at it."""

    deployment: Deployment
    server: RunningServer
    client: httpx.Client

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return self.server.base_url


@contextlib.contextmanager
def deploy(
    deployment: Deployment,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 20.0,
    **serve_options: Any,
) -> Iterator[Live]:
    """Start ``deployment`` and yield it with a client; stop both on exit.

    :param deployment: what to run.
    :param env: extra environment for the server, on top of ``BRIDGE_ADAPTER``.
    :param timeout: the client's connect/read/write/pool timeout, in seconds.
    :param serve_options: passed to :func:`compat_suite.servers.serve`
        (``workers``, ``threads``, ``extra_args``...).
    :raises compat_suite.servers.ServerStartError: if the server does not come up.
    """
    server_env = {ADAPTER_ENV: deployment.adapter, **(env or {})}
    with (
        serve(
            deployment.server, TARGETS[deployment.app], env=server_env, **serve_options
        ) as server,
        httpx.Client(base_url=server.base_url, timeout=timeout) as client,
    ):
        yield Live(deployment=deployment, server=server, client=client)
