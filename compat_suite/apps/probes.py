"""Facts a served app records about itself, for a scenario to ask for over HTTP.

Some facts cannot be seen from the client: was the WSGI iterable closed, and
how often; did the ASGI app get ``http.disconnect``. The app records them here
under a key the scenario chose; the scenario then asks ``GET /_probe/<key>?wait=<fact>``,
which blocks (on a condition, not a sleep) until that fact is recorded or
:data:`WAIT_TIMEOUT` passes, and answers the key's facts as JSON.

One registry per process: the matrix runs every server with one worker.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DISCONNECT_CHUNKS",
    "FILE_BODY",
    "PROBES",
    "PROBE_PREFIX",
    "SHUTDOWN_MARKER",
    "WAIT_TIMEOUT",
    "Probes",
    "poll_probe",
]

PROBE_PREFIX = "/_probe/"
#: Seconds a probe request waits for a fact before answering what it has.
WAIT_TIMEOUT = 10.0

# Shared by the two conformance apps and the scenarios.
#: What ``/file-wrapper`` and ``/pathsend`` send.
FILE_BODY = b"file body, sent by wsgi.file_wrapper or http.response.pathsend\n" * 300
#: Most chunks ``/disconnect`` produces after its gate if nobody stops it (16 MiB).
DISCONNECT_CHUNKS = 256
#: What the raw ASGI app prints to stderr (the server log) when lifespan shutdown ran.
SHUTDOWN_MARKER = "conformance-asgi: lifespan shutdown complete"


class Probes:
    """A thread-safe ``key -> {fact: value}`` registry with blocking waits."""

    def __init__(self) -> None:
        self._facts: dict[str, dict[str, Any]] = {}
        self._changed = threading.Condition()

    def record(self, key: str, fact: str, value: Any) -> None:
        """Set ``fact`` of ``key`` and wake the waiters."""
        with self._changed:
            self._facts.setdefault(key, {})[fact] = value
            self._changed.notify_all()

    def add(self, key: str, fact: str, amount: int = 1) -> None:
        """Add ``amount`` to the counter ``fact`` of ``key`` (from 0)."""
        with self._changed:
            facts = self._facts.setdefault(key, {})
            facts[fact] = int(facts.get(fact, 0)) + amount
            self._changed.notify_all()

    def wait(self, key: str, fact: str | None, timeout: float = WAIT_TIMEOUT) -> dict[str, Any]:
        """The facts of ``key``, once ``fact`` is among them (or after ``timeout``)."""
        with self._changed:
            if fact:
                self._changed.wait_for(lambda: fact in self._facts.get(key, {}), timeout)
            return dict(self._facts.get(key, {}))

    def answer(self, path: str, query: str) -> bytes:
        """The JSON body for a ``/_probe/<key>?wait=<fact>`` request."""
        key = path[len(PROBE_PREFIX) :]
        fact = None
        for pair in query.split("&"):
            name, _, value = pair.partition("=")
            if name == "wait":
                fact = value
        return json.dumps(self.wait(key, fact)).encode()


#: The registry of this process.
PROBES = Probes()


def poll_probe(
    client: httpx.Client, key: str, fact: str, timeout: float = WAIT_TIMEOUT
) -> dict[str, Any]:
    """The facts of ``key`` once ``fact`` is among them, or after ``timeout`` seconds.

    Client side, and polled rather than ``?wait=``: that wait blocks inside the
    app, and under an inline executor (bridge's greenlet) the app runs on the
    server's event loop, which then cannot make the progress it waits for.
    """
    deadline = time.monotonic() + timeout
    while True:
        facts: dict[str, Any] = client.get(f"{PROBE_PREFIX}{key}").json()
        if fact in facts or time.monotonic() > deadline:
            return facts
        time.sleep(0.02)  # the facts live in the server process: nothing to wait on here
