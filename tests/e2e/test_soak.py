"""Soak: many requests of every kind at once, and not one of them is lost.

The promise (README, "What it guarantees" and "How it runs"): every request
ends in a full response, a clean ``500`` or an aborted connection, never in a
hang or a truncated ``200``; the WSGI iterable's ``close()`` runs exactly once;
threads and tasks are released; a client that leaves stops the work. The other
end-to-end tests check each of these one request at a time. Here 16 client
threads run a fixed, seeded mix of requests together against one real server
per deployment, so the paths interleave: uploads with and without
``Content-Length``, streamed downloads read to the end, clients that leave
mid-response or mid-upload (raw sockets, by FIN or by RST), and routes that
raise before or after the response started.

Rules:

1. Deterministic work, not a duration: the mix is a fixed count of each kind,
   shuffled by :data:`SEED` (``BRIDGE_SOAK_SEED`` overrides it, to explore),
   and dealt round-robin to the client threads. Only the interleaving varies.
2. Nothing waits on the clock: where order matters, the app waits at a
   :class:`~compat_suite.gate.Gate` the client opens; facts the client cannot
   see (``close()`` counts, ``http.disconnect``) come from the app's probes.
   Every client call has a generous timeout, so a hang fails with its request
   named instead of stalling the run.
3. One broken request does not stop the mix: each failure is noted with its
   request and the mix goes on, so one report shows every broken promise.
4. After the mix: every probe holds; the deployment's workers are all free
   again (as many requests as it has threads wait at one gate together); a
   normal request is answered promptly; a second read of every probe shows
   nothing changed (no late second ``close()``); and, on uvicorn, the server
   stops without a request task still running.
5. No temp file is left open: once the mix is over, the server's processes
   hold no unlinked file in the temp directory that they did not hold before
   it (``WsgiToAsgi`` spills request bodies over 1 MiB to one, and the mix
   has uploads and clients that leave mid-upload on both sides of that
   size). Read from ``/proc``, as the requests' ends are not visible to the
   client: the check waits, up to a deadline, for the set to shrink back.

The apps are the matrix's conformance apps, unchanged: the WSGI one through
``WsgiToAsgi`` (both executors) on ASGI servers, the ASGI one through
``AsgiToWsgi`` (both backends) on threaded WSGI servers.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import os
import random
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from bridge.wsgi_to_asgi import MAX_THREADS
from compat_suite.apps import CHUNK_SIZE
from compat_suite.apps.probes import DISCONNECT_CHUNKS, FILE_BODY, PROBE_PREFIX, poll_probe
from compat_suite.bench.cpu import process_tree
from compat_suite.deployments import Deployment, Live
from compat_suite.gate import Gate
from compat_suite.matrix.variants import MATRIX_ADAPTER_ENV
from compat_suite.servers import SERVERS, available_servers, serve

#: Seeds the mix's order and every size in it (rule 1).
SEED = int(os.environ.get("BRIDGE_SOAK_SEED", "20261124"))
#: Client threads, each with its own connections.
LANES = 16
#: Seconds any one client call may take: far above a loaded machine's worst.
CLIENT_TIMEOUT = 30.0
#: Seconds the whole mix may take (about 1 s here); past it, lanes skip what is
#: left, so requests that all hang still end in a report, not in the test's timeout.
MIX_DEADLINE = 60.0
#: Seconds every probe together may take to show its fact, once the mix is over.
PROBE_DEADLINE = 30.0
#: Seconds the request after the mix may take.
PROMPT = 5.0
#: Seconds between two reads of the server's open files (rule 5).
FD_POLL = 0.05

_WSGI_APP = "conformance_wsgi"
_ASGI_APP = "conformance_asgi"

# Request kinds, and how many of each one deployment gets (rule 1). The two
# apps have different routes, so each direction has its own mix.
WSGI_MIX: Mapping[str, int] = {
    "hello": 36,
    "upload": 24,
    "upload-chunked": 16,
    "stream": 16,  # /close: a generator body, read to the end
    "write": 8,  # write() before the iterable
    "download": 4,  # /endless read to the end: 16 MiB through backpressure
    "file-wrapper": 12,
    "truncate": 12,  # a body longer than its Content-Length
    "leave-download": 40,
    "leave-upload": 24,
    "error-before": 10,
    "exc-info": 6,
    "no-start": 6,
    "error-after": 16,
}
ASGI_MIX: Mapping[str, int] = {
    "hello": 40,
    "upload": 28,
    "upload-chunked": 20,
    "stream": 24,  # /stream?gate: first chunk, the app waits, last chunk
    "download": 4,  # /disconnect read to the end: 16 MiB through backpressure
    "leave-download": 40,
    "leave-upload": 24,
    "error-before": 14,
    "no-start": 10,
    "error-after": 20,
}

# Below and above the 1 MiB WsgiToAsgi keeps in memory, and around the 64 KiB
# both adapters read at a time.
_UPLOAD_SIZES = (0, 1, 4095, CHUNK_SIZE, CHUNK_SIZE + 1, 300_000, 1_200_000)
_LEAVE_UPLOAD_SIZES = (200_000, 1_200_000)
_PIECES = (4096, 16384, CHUNK_SIZE)
# How much of /endless a leaving client reads first (at most 8 of its chunks).
_LEAVE_AFTER = 8 * CHUNK_SIZE
# The ASGI /disconnect sends one chunk, then waits at its gate: read less than that.
_LEAVE_AFTER_FIRST_CHUNK = CHUNK_SIZE // 2
# Both apps' long stream: one chunk, then DISCONNECT_CHUNKS more, all b"x".
_LONG_STREAM_SIZE = (DISCONNECT_CHUNKS + 1) * CHUNK_SIZE
# A client that left must stop the stream far short of its end. Until the
# adapter hears of it, the app may fill what lies between: the client's reads
# (at most 8 chunks), its receive buffer (kept at 64 KiB, see _connect), the
# server's socket send buffer (Linux grows it up to tcp_wmem's maximum, 4 MiB
# by default: 64 chunks) and WsgiToAsgi's send buffer (8), about 82 chunks;
# up to 81 seen here. Half the stream, the bound of test_disconnect.py, leaves
# room for a kernel tuned a little higher.
_PRODUCED_AT_MOST = (DISCONNECT_CHUNKS + 1) // 2
_LEAVING_CLIENT_BUFFER = 64 * 1024

# Gaps of the servers, not of bridge (compat_suite/matrix/gaps.py), and where they apply.
#: granian's WSGI interface ends a chunked response cleanly when the iterator
#: raises, so an abort after the first chunk looks complete to the client.
_ENDS_ABORTED_BODY_CLEANLY = frozenset({"granian-wsgi"})
#: granian's ASGI ``send()`` drops the body without raising once the client is
#: gone, and tells of it only later (granian#650): a native ASGI app there
#: produced all of a 16 MiB stream for each of 64 clients (16 at a time) that
#: left after 256 KiB. Bridge
#: stops sooner, as soon as ``receive()`` says ``http.disconnect``, but how soon
#: depends on the load (189 of 257 chunks seen here, thread executor).
_NO_SEND_BACKPRESSURE = frozenset({"granian-asgi"})
#: waitress's worker threads hand the body to the connection's output buffer
#: (up to its outbuf_high_watermark, 16 MiB) and only its main thread learns
#: that the client left. With both cores busy, a native WSGI app there produced
#: all of a 16 MiB stream for 48 of 48 clients that had left (gunicorn gthread:
#: none). Through bridge the ASGI app still hears http.disconnect, but may have
#: finished sending first (1 of 48 on the same machine).
_BUFFERS_THE_RESPONSE = frozenset({"waitress"})


def _deployments() -> list[Deployment]:
    available = available_servers()
    wsgi_servers = ("uvicorn", "hypercorn", "hypercorn-trio", "granian-asgi")
    asgi_servers = ("gunicorn-gthread", "waitress", "granian-wsgi")
    return [
        *(
            Deployment(server, _WSGI_APP, executor)
            for server in wsgi_servers
            if server in available
            for executor in ("bridge-thread", "bridge-greenlet")
        ),
        *(
            Deployment(server, _ASGI_APP, backend)
            for server in asgi_servers
            if server in available
            for backend in ("bridge-asyncio", "bridge-trio")
        ),
    ]


# The mix, the probes and the checks after them are bounded (MIX_DEADLINE,
# PROBE_DEADLINE...): this is the last resort, well above their sum.
pytestmark = pytest.mark.timeout(240)


# ---------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Plan:
    """One request of the mix.

    :param index: its place in the shuffled mix; also names its probe key.
    :param kind: a key of :data:`WSGI_MIX` or :data:`ASGI_MIX`.
    :param size: upload: body bytes (declared, for one the client leaves);
        download the client leaves: body bytes it reads first.
    :param sent: upload the client leaves: body bytes sent before leaving.
    :param piece: chunked upload: bytes per chunk.
    :param chunked: upload the client leaves: chunked, not ``Content-Length``.
    :param reset: a client that leaves does so with a RST (``SO_LINGER`` 0), not a FIN.
    """

    index: int
    kind: str
    size: int = 0
    sent: int = 0
    piece: int = CHUNK_SIZE
    chunked: bool = False
    reset: bool = False

    @property
    def key(self) -> str:
        """The probe key; unique within a server's life (one mix per server)."""
        return f"soak-{self.index}-{self.kind}"

    def body(self) -> bytes:
        """The upload body: ``size`` bytes, a function of the plan, different for every request."""
        return random.Random(f"{self.index}-{self.size}").randbytes(self.size)

    def __str__(self) -> str:
        # Only what was drawn for this kind, e.g. "#17 leave-upload size=200000 sent=123 ...".
        drawn = [
            f"{spec.name}={getattr(self, spec.name)}"
            for spec in dataclasses.fields(self)
            if spec.name not in ("index", "kind") and getattr(self, spec.name) != spec.default
        ]
        return " ".join([f"#{self.index}", self.kind, *drawn])


def plan_mix(mix: Mapping[str, int], seed: int) -> list[Plan]:
    """The mix: ``mix[kind]`` requests of each kind, in a seeded order, with seeded sizes."""
    rng = random.Random(seed)
    drawn: list[dict[str, Any]] = []
    for kind, count in mix.items():
        for _ in range(count):
            params: dict[str, Any] = {"kind": kind}
            if kind in ("upload", "upload-chunked"):
                params.update(size=rng.choice(_UPLOAD_SIZES), piece=rng.choice(_PIECES))
            elif kind == "leave-download":
                params.update(size=rng.randrange(1, _LEAVE_AFTER), reset=rng.random() < 0.5)
            elif kind == "leave-upload":
                size = rng.choice(_LEAVE_UPLOAD_SIZES)
                params.update(
                    size=size,
                    sent=rng.randrange(0, size),
                    piece=rng.choice(_PIECES),
                    chunked=rng.random() < 0.5,
                    reset=rng.random() < 0.5,
                )
            drawn.append(params)
    rng.shuffle(drawn)
    return [Plan(index=index, **params) for index, params in enumerate(drawn)]


# ---------------------------------------------------------------- what a request leaves to check


@dataclass(frozen=True)
class Probe:
    """Facts the app must have recorded under ``plan.key`` (rule 2).

    :param wait_for: the fact to wait for before judging.
    :param equal: facts that must have exactly these values.
    :param at_most: counters that must not exceed these bounds.
    :param absent: facts that must not be recorded at all.
    """

    plan: Plan
    wait_for: str
    equal: Mapping[str, object]
    at_most: Mapping[str, int] = field(default_factory=dict)
    absent: tuple[str, ...] = ()

    def violations(self, facts: Mapping[str, Any]) -> list[str]:
        """What in ``facts`` breaks this probe; empty if nothing does."""
        broken = [
            f"{name}={facts.get(name)!r}, expected {value!r}"
            for name, value in self.equal.items()
            if facts.get(name) != value
        ]
        broken += [
            f"{name}={facts.get(name)!r}, expected at most {bound}"
            for name, bound in self.at_most.items()
            if int(facts.get(name, 0)) > bound
        ]
        broken += [f"{name} recorded: {facts[name]!r}" for name in self.absent if name in facts]
        return broken


@dataclass(frozen=True)
class Target:
    """The running deployment, as the request kinds need it."""

    base_url: str
    server: str
    adapter: str

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` for raw sockets."""
        parts = urlsplit(self.base_url)
        return parts.hostname or "127.0.0.1", parts.port or 80


#: A request kind: sends one request of ``plan``, raises ``AssertionError`` for
#: a broken promise, and returns the probe to check later, if any.
Kind = Callable[[Target, httpx.Client, Plan], Probe | None]


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


def _expect_response(response: httpx.Response, status: int, body: bytes | None = None) -> None:
    """A complete response with ``status`` (and exactly ``body``).

    httpx has already checked the framing: a body shorter than its
    ``Content-Length``, or a chunked body without its last chunk, raised.
    """
    seen = (response.status_code, response.content[:80])
    _expect(response.status_code == status, f"expected {status}, saw {seen!r}")
    if body is not None:
        _expect(
            response.content == body,
            f"expected the {len(body)}-byte body, saw {len(response.content)} bytes {seen!r}",
        )


def _read_long_stream(response: httpx.Response) -> None:
    """Read a 200 of :data:`_LONG_STREAM_SIZE` bytes of ``x`` to its end, without keeping it."""
    _expect(response.status_code == 200, f"expected 200, saw {response.status_code}")
    received = 0
    for chunk in response.iter_bytes():
        _expect(chunk == b"x" * len(chunk), f"a byte other than x after {received} bytes")
        received += len(chunk)
    _expect(received == _LONG_STREAM_SIZE, f"read {received} bytes of {_LONG_STREAM_SIZE}")


# ---------------------------------------------------------------- kinds: complete responses


def _hello(target: Target, client: httpx.Client, plan: Plan) -> None:
    _expect_response(client.get("/hello"), 200, b"hello")


def _pieces(data: bytes, piece: int) -> Iterator[bytes]:
    for start in range(0, len(data), piece):
        yield data[start : start + piece]


def _upload(target: Target, client: httpx.Client, plan: Plan) -> None:
    data = plan.body()
    if plan.kind == "upload-chunked":
        # An iterator has no length: httpx sends it chunked.
        response = client.post("/echo", content=_pieces(data, plan.piece))
        _expect(
            response.request.headers.get("transfer-encoding") == "chunked",
            "the upload was not sent chunked",
        )
    else:
        response = client.post("/echo", content=data)
    _expect_response(response, 200)
    echoed = response.json()
    seen = (echoed.get("body_length"), echoed.get("body_sha256"))
    expected = (len(data), hashlib.sha256(data).hexdigest())
    _expect(seen == expected, f"the app read {seen}, expected {expected}")


def _wsgi_stream(target: Target, client: httpx.Client, plan: Plan) -> Probe:
    _expect_response(client.get("/close", params={"key": plan.key}), 200, b"one two")
    return Probe(plan, "closed", {"closed": 1, "produced": 2})


def _wsgi_write(target: Target, client: httpx.Client, plan: Plan) -> None:
    _expect_response(client.get("/write"), 200, b"from write(), then from the iterable")


def _wsgi_download(target: Target, client: httpx.Client, plan: Plan) -> Probe:
    with client.stream("GET", "/endless", params={"key": plan.key}) as response:
        _read_long_stream(response)
    return Probe(plan, "closed", {"closed": 1, "produced": DISCONNECT_CHUNKS + 1})


def _wsgi_file_wrapper(target: Target, client: httpx.Client, plan: Plan) -> Probe:
    _expect_response(client.get("/file-wrapper", params={"key": plan.key}), 200, FILE_BODY)
    return Probe(plan, "closed", {"closed": 1})


def _wsgi_truncate(target: Target, client: httpx.Client, plan: Plan) -> Probe:
    # The app declares 5 bytes and yields 10: the adapter sends 5 and closes.
    _expect_response(client.get("/truncate", params={"key": plan.key}), 200, b"12345")
    return Probe(plan, "closed", {"closed": 1})


def _asgi_stream(target: Target, client: httpx.Client, plan: Plan) -> None:
    with (
        Gate() as gate,
        client.stream("GET", "/stream", params={"gate": gate.port}) as response,
    ):
        _expect(response.status_code == 200, f"expected 200, saw {response.status_code}")
        chunks = response.iter_raw()
        received = b""
        while b"\n" not in received:  # the first chunk arrives while the app waits
            chunk = next(chunks, b"")
            _expect(bool(chunk), f"the stream ended before its first line: {received!r}")
            received += chunk
        gate.open()
        received += b"".join(chunks)
    expected = b"first chunk\nlast chunk, gate opened\n"
    _expect(received == expected, f"expected {expected!r}, saw {received!r}")


def _asgi_download(target: Target, client: httpx.Client, plan: Plan) -> Probe:
    with Gate() as gate:
        params: dict[str, str | int] = {"key": plan.key, "gate": gate.port}
        with client.stream("GET", "/disconnect", params=params) as response:
            gate.open()  # at once: this client reads it all
            _read_long_stream(response)
    # The response ended, then the app heard http.disconnect and returned. ASGI
    # www §Disconnect - receive event: "Sent to the application if receive is
    # called after a response has been sent or after the HTTP connection has
    # been closed."
    return Probe(
        plan,
        "disconnect",
        {"completed": True, "disconnect": True, "produced": DISCONNECT_CHUNKS},
    )


# ---------------------------------------------------------------- kinds: errors


def _error_before(target: Target, client: httpx.Client, plan: Plan) -> None:
    # /error-before raises before the response starts; /no-start never starts it.
    _expect_response(client.get(f"/{plan.kind}"), 500)


def _exc_info(target: Target, client: httpx.Client, plan: Plan) -> None:
    _expect_response(client.get("/exc-info"), 500, b"replaced by exc_info")


def _error_after(target: Target, client: httpx.Client, plan: Plan) -> None:
    try:
        response = client.get("/error-after")
    except httpx.TransportError:
        return  # aborted: the only honest end of a body the app could not finish
    seen = (response.status_code, response.content)
    if target.server in _ENDS_ABORTED_BODY_CLEANLY and seen == (200, b"partial body\n"):
        return  # the server's gap, not the adapter's (see _ENDS_ABORTED_BODY_CLEANLY)
    raise AssertionError(f"a complete-looking response after the app raised mid-body: {seen!r}")


# ---------------------------------------------------------------- kinds: clients that leave


def _connect(target: Target) -> socket.socket:
    """A raw client connection whose receive buffer stays small.

    Set before connecting, a fixed ``SO_RCVBUF`` turns off Linux's autotuning,
    which could otherwise grow the buffer (up to ``tcp_rmem``'s maximum,
    32 MiB on some kernels) with chunks the app produced for a client that
    then leaves: see :data:`_PRODUCED_AT_MOST`.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _LEAVING_CLIENT_BUFFER)
    sock.settimeout(CLIENT_TIMEOUT)
    sock.connect(target.address)
    return sock


def _leave(sock: socket.socket, reset: bool) -> None:
    """Close the connection the way a client that gives up does: FIN, or RST."""
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _read_response_start(sock: socket.socket, path: str, body_bytes: int) -> None:
    """GET ``path``; read the head, expect a 200, then read ``body_bytes`` more bytes at least."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: soak\r\n\r\n".encode())
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        _expect(bool(chunk), f"the server closed before the head: {received[:80]!r}")
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    _expect(head.startswith(b"HTTP/1.1 200 "), f"expected a 200 that streams, saw {head[:80]!r}")
    while len(body) < body_bytes:
        chunk = sock.recv(65536)
        _expect(bool(chunk), f"the server closed after {len(body)} body bytes")
        body += chunk


def _wsgi_leave_download(target: Target, client: httpx.Client, plan: Plan) -> Probe:
    with _connect(target) as sock:
        _read_response_start(sock, f"/endless?key={plan.key}", plan.size)
        _leave(sock, plan.reset)
    bound = {} if target.server in _NO_SEND_BACKPRESSURE else {"produced": _PRODUCED_AT_MOST}
    return Probe(plan, "closed", {"closed": 1}, bound)


def _asgi_leave_download(target: Target, client: httpx.Client, plan: Plan) -> Probe:
    # The app sends one chunk and waits at the gate: the client leaves while it
    # waits, then lets it go on, into a closed connection.
    with Gate() as gate:
        with _connect(target) as sock:
            path = f"/disconnect?key={plan.key}&gate={gate.port}"
            _read_response_start(sock, path, min(plan.size, _LEAVE_AFTER_FIRST_CHUNK))
            gate.wait_for_arrival()
            _leave(sock, plan.reset)
        gate.open()
    # Not completed: the app learnt of the disconnect before its last chunk.
    unfinished = () if target.server in _BUFFERS_THE_RESPONSE else ("completed",)
    return Probe(plan, "disconnect", {"disconnect": True, "gate_opened": True}, absent=unfinished)


def _leave_upload(target: Target, client: httpx.Client, plan: Plan) -> None:
    """Start an upload to ``/echo`` and leave after ``plan.sent`` of its bytes.

    Nothing is left to probe: ``/echo`` records no facts, and ``WsgiToAsgi``
    does not call the app for a body that never ended. What such a request
    must not do is keep a thread, which the check after the mix would see.
    """
    data = plan.body()[: plan.sent]
    if plan.chunked:
        framing = b"Transfer-Encoding: chunked\r\n"
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in _pieces(data, plan.piece))
    else:
        framing = b"Content-Length: %d\r\n" % plan.size
        body = data
    head = b"POST /echo HTTP/1.1\r\nHost: soak\r\n" + framing + b"\r\n"
    with _connect(target) as sock:
        sock.sendall(head + body)
        _leave(sock, plan.reset)


WSGI_KINDS: Mapping[str, Kind] = {
    "hello": _hello,
    "upload": _upload,
    "upload-chunked": _upload,
    "stream": _wsgi_stream,
    "write": _wsgi_write,
    "download": _wsgi_download,
    "file-wrapper": _wsgi_file_wrapper,
    "truncate": _wsgi_truncate,
    "leave-download": _wsgi_leave_download,
    "leave-upload": _leave_upload,
    "error-before": _error_before,
    "exc-info": _exc_info,
    "no-start": _error_before,
    "error-after": _error_after,
}
ASGI_KINDS: Mapping[str, Kind] = {
    "hello": _hello,
    "upload": _upload,
    "upload-chunked": _upload,
    "stream": _asgi_stream,
    "download": _asgi_download,
    "leave-download": _asgi_leave_download,
    "leave-upload": _leave_upload,
    "error-before": _error_before,
    "no-start": _error_before,
    "error-after": _error_after,
}


# ---------------------------------------------------------------- running the mix


@dataclass
class Ledger:
    """What the client threads saw: failures, and the probes to check afterwards."""

    failures: list[str] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, plan: Plan | None, what: str) -> None:
        """Note a broken promise (rule 3)."""
        with self.lock:
            self.failures.append(f"{plan or 'after the mix'}: {what}")


def _run_lane(
    target: Target, kinds: Mapping[str, Kind], plans: list[Plan], ledger: Ledger, deadline: float
) -> None:
    with httpx.Client(base_url=target.base_url, timeout=CLIENT_TIMEOUT) as client:
        for plan in plans:
            if time.monotonic() > deadline:
                ledger.fail(plan, f"not sent: the mix ran over {MIX_DEADLINE} s")
                continue
            try:
                probe = kinds[plan.kind](target, client, plan)
            except Exception as exc:  # any error is this request's failure (rule 3)
                ledger.fail(plan, f"{type(exc).__name__}: {exc}")
                continue
            if probe is not None:
                with ledger.lock:
                    ledger.probes.append(probe)


def run_mix(target: Target, kinds: Mapping[str, Kind], plans: list[Plan]) -> Ledger:
    """Deal ``plans`` round-robin to :data:`LANES` threads and run them all at once."""
    ledger = Ledger()
    deadline = time.monotonic() + MIX_DEADLINE
    with concurrent.futures.ThreadPoolExecutor(LANES, thread_name_prefix="soak") as pool:
        lanes = [
            pool.submit(_run_lane, target, kinds, plans[lane::LANES], ledger, deadline)
            for lane in range(LANES)
        ]
        for lane in concurrent.futures.as_completed(lanes):
            lane.result()
    return ledger


def _read_probes(client: httpx.Client, ledger: Ledger) -> dict[str, dict[str, Any]]:
    """Each probe's facts once its ``wait_for`` fact is in; broken ones go to the ledger.

    ``poll_probe`` asks without ``?wait=``: the greenlet executor runs the app
    on the server's loop, where a wait would stop what it waits for. The
    probes share one deadline: every request has ended by now, so the facts
    are due; a fact that never comes costs the wait once, not once per probe.
    """
    seen = {}
    deadline = time.monotonic() + PROBE_DEADLINE
    for probe in ledger.probes:
        left = max(0.0, deadline - time.monotonic())
        facts = poll_probe(client, probe.plan.key, probe.wait_for, timeout=left)
        seen[probe.plan.key] = facts
        for broken in probe.violations(facts):
            ledger.fail(probe.plan, f"{broken} (facts {facts})")
    return seen


def _workers(target: Target) -> int:
    """Requests the deployment runs at once, one per thread; 0 where no thread pool bounds it."""
    if target.adapter == "bridge-thread":
        return MAX_THREADS  # WsgiToAsgi's default limiter
    if target.adapter == "bridge-greenlet":
        return 0  # inline on the loop: no pool, and an app at a gate would block the loop
    return SERVERS[target.server].threads  # the WSGI server's own threads


def _check_workers_free(client: httpx.Client, workers: int, ledger: Ledger) -> None:
    """``workers`` requests wait at one gate together: none of the mix still holds one.

    A thread or limiter token a request of the mix kept would leave one of
    these queued, and the gate would time out waiting for it.
    """
    # The gate closes first on the way out: that releases any app still at it,
    # so the pool's requests can end and the pool can shut down.
    with (
        concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="held") as pool,
        Gate() as gate,
    ):
        held = [
            pool.submit(client.get, "/stream", params={"gate": gate.port}) for _ in range(workers)
        ]
        arrived = 0
        try:
            while arrived < workers:
                gate.wait_for_arrival()
                arrived += 1
        except TimeoutError:
            ledger.fail(None, f"only {arrived} of {workers} workers were free")
            return
        gate.open()
        for future in held:
            response = future.result()  # bounded by the client's timeout
            if response.status_code != 200 or b"gate opened" not in response.content:
                ledger.fail(None, f"a held request ended {response.status_code} {response.text!r}")


def open_temp_files(root: int) -> set[str]:
    """Unlinked files in the temp directory the server's processes hold, as ``pid:fd -> path``.

    :func:`tempfile.TemporaryFile` unlinks its file at once (or opens it
    ``O_TMPFILE``), so ``/proc/<pid>/fd`` shows it as ``<tempdir>/... (deleted)``.
    """
    prefix = tempfile.gettempdir().rstrip(os.sep) + os.sep
    held = set()
    for pid in process_tree(root):
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                path = os.readlink(fd)
            except OSError:
                continue  # closed meanwhile
            if path.startswith(prefix) and path.endswith(" (deleted)"):
                held.add(f"{pid}:{fd.name} -> {path}")
    return held


def check_temp_files_closed(root: int, before: set[str], ledger: Ledger) -> None:
    """Rule 5: wait, up to :data:`PROBE_DEADLINE`, until no temp file beyond ``before`` is open."""
    deadline = time.monotonic() + PROBE_DEADLINE
    while True:
        left = open_temp_files(root) - before
        if not left:
            return
        if time.monotonic() > deadline:
            ledger.fail(None, f"{len(left)} temp files still open: {sorted(left)[:5]}")
            return
        time.sleep(FD_POLL)


def check_after_mix(client: httpx.Client, target: Target, ledger: Ledger) -> None:
    """Rule 4, in order. A server that stops answering ends the checks with that failure."""
    try:
        first = _read_probes(client, ledger)
        workers = _workers(target)
        if workers:
            _check_workers_free(client, workers, ledger)
        try:
            prompt = client.get("/hello", timeout=PROMPT)
        except httpx.TimeoutException:
            ledger.fail(None, f"/hello took over {PROMPT} s")
        else:
            if (prompt.status_code, prompt.content) != (200, b"hello"):
                ledger.fail(None, f"/hello: {prompt.status_code} {prompt.content!r}")
        # Nothing may have changed since the first read: no close() came late, or twice.
        for probe in ledger.probes:
            key = probe.plan.key
            later = client.get(f"{PROBE_PREFIX}{key}").json()
            if later != first[key]:
                ledger.fail(probe.plan, f"facts changed after the mix: {first[key]} -> {later}")
    except httpx.HTTPError as exc:
        ledger.fail(None, f"the server stopped answering: {type(exc).__name__}: {exc}")


# ---------------------------------------------------------------- the test


#: What uvicorn logs when a request task outlives its graceful-shutdown timeout.
_UVICORN_TASKS_LEFT = "timeout graceful shutdown exceeded"


@pytest.fixture(scope="module")
def soak_server(request: pytest.FixtureRequest) -> Iterator[Live]:
    """The deployment named by the test's parameter, started once for its mix.

    After it stops, uvicorn's log must not say it had to cancel request tasks:
    one left running 5 s after the stop signal is a task the mix leaked (rule 4).
    """
    # Here ``app`` names a module of compat_suite.apps (the conformance apps,
    # which compat_suite.apps.TARGETS does not list), served as ``module:application``.
    deployment: Deployment = request.param
    with (
        serve(
            deployment.server,
            f"compat_suite.apps.{deployment.app}:application",
            env={MATRIX_ADAPTER_ENV: deployment.adapter},
            keep_log=True,
        ) as running,
        httpx.Client(base_url=running.base_url, timeout=CLIENT_TIMEOUT) as client,
    ):
        # A Live among the test's arguments gets the server's log attached on failure.
        yield Live(deployment=deployment, server=running, client=client)
    log = running.log_text()
    running.log_path.unlink(missing_ok=True)
    if deployment.server == "uvicorn" and _UVICORN_TASKS_LEFT in log:
        pytest.fail(f"request tasks still running when uvicorn stopped:\n{log[-4000:]}")


@pytest.mark.parametrize(
    "soak_server",
    [pytest.param(d, id=f"{d.server}-{d.adapter}") for d in _deployments()],
    indirect=True,
)
def test_no_request_is_lost(soak_server: Live) -> None:
    deployment = soak_server.deployment
    target = Target(soak_server.base_url, deployment.server, deployment.adapter)
    wsgi_app = deployment.app == _WSGI_APP
    plans = plan_mix(WSGI_MIX if wsgi_app else ASGI_MIX, SEED)

    server_pid = soak_server.server.pid
    temp_files_before = open_temp_files(server_pid) if sys.platform == "linux" else set()
    ledger = run_mix(target, WSGI_KINDS if wsgi_app else ASGI_KINDS, plans)
    check_after_mix(soak_server.client, target, ledger)
    if sys.platform == "linux":
        check_temp_files_closed(server_pid, temp_files_before, ledger)

    assert not ledger.failures, (
        f"{len(ledger.failures)} broken promises in {len(plans)} requests "
        f"(BRIDGE_SOAK_SEED={SEED}):\n" + "\n".join(ledger.failures[:40])
    )
