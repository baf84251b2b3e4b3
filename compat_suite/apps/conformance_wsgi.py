"""A raw PEP 3333 conformance app for the matrix; ``application`` serves it on ASGI servers.

Every route exercises one rule of SPEC sections A and B, with nothing between
the adapter and the app. ``application`` is the app behind the adapter that
``COMPAT_MATRIX_ADAPTER`` names, mounted so that ``/mnt/...`` has ``SCRIPT_NAME="/mnt"``.

Routes (any method unless said):

- ``/echo...``: the environ essentials and the request body's length and digest, as JSON.
- ``/lines``: the request body read by lines, the first half of them with
  ``readline()`` and the rest by iterating over ``wsgi.input``, as JSON: how
  many, their digest, and whether each ended at its first ``b"\\n"``.
- ``/hello``: ``hello`` with ``Content-Length: 5`` (HEAD scenarios).
- ``/status/204``, ``/status/304``: no body.
- ``/set-cookies``: two ``Set-Cookie`` headers.
- ``/stream?gate=N``: one chunk, then the test's gate, then the last chunk.
- ``/error-before``, ``/error-after``, ``/exc-info``, ``/no-start``, ``/empty``, ``/write``.
- ``/close?key=K``, ``/truncate?key=K``, ``/disconnect?key=K&gate=N``,
  ``/endless?key=K`` (like ``/disconnect`` without the gate),
  ``/file-wrapper?key=K``: record ``close()`` calls in :mod:`compat_suite.apps.probes`.
- ``/_probe/K?wait=FACT``: the facts recorded under ``K``.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

from bridge.types import Environ, StartResponse
from compat_suite.apps import CHUNK_SIZE
from compat_suite.apps.probes import DISCONNECT_CHUNKS, FILE_BODY, PROBE_PREFIX, PROBES
from compat_suite.gate import wait_for_gate
from compat_suite.matrix.variants import mounted_asgi, wrap_wsgi_app

__all__ = ["app", "application"]


_ENVIRON_KEYS = (
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
    "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR",
    "wsgi.url_scheme", "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once",
    "wsgi.input_terminated",
)  # fmt: skip


def _read_body(environ: Environ) -> bytes:
    stream = environ["wsgi.input"]
    if environ.get("wsgi.input_terminated"):
        chunks = []
        while chunk := stream.read(CHUNK_SIZE):
            chunks.append(chunk)
        return b"".join(chunks)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return bytes(stream.read(length)) if length else b""


def _is_latin1_str(value: object) -> bool:
    return isinstance(value, str) and all(ord(c) < 256 for c in value)


def _echo(environ: Environ) -> dict[str, Any]:
    body = _read_body(environ)
    errors = environ.get("wsgi.errors")
    try:
        errors.write("conformance app: echo\n")  # type: ignore[union-attr]
        errors_text = True
    except TypeError:
        errors_text = False
    plain = {k: v for k, v in environ.items() if "." not in k}
    return {
        "environ": {k: environ.get(k) for k in _ENVIRON_KEYS if k in environ},
        "headers": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
        "environ_is_dict": type(environ) is dict,
        "plain_keys_latin1_str": all(_is_latin1_str(v) for v in plain.values()),
        "server_port_type": type(environ.get("SERVER_PORT")).__name__,
        "wsgi_version": list(environ.get("wsgi.version", ())),
        "wsgi_version_is_tuple": isinstance(environ.get("wsgi.version"), tuple),
        "errors_is_text": errors_text,
        "body_length": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
    }


def _lines(environ: Environ) -> dict[str, Any]:
    # A22: readline() and __iter__ until b"" at the end of the body.
    stream = environ["wsgi.input"]
    half = int(environ.get("HTTP_X_LINES") or 0) // 2
    lines = [stream.readline() for _ in range(half)]
    lines.extend(stream)
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line)
    return {
        "lines": len(lines),
        "sha256": digest.hexdigest(),
        # Every line ends at its first newline; only the last may lack one.
        "split_ok": all(
            line.find(b"\n") == len(line) - 1 or (index == len(lines) - 1 and b"\n" not in line)
            for index, line in enumerate(lines)
        ),
    }


class _Recorded:
    """An iterable whose ``close()`` calls are counted under a probe key."""

    def __init__(self, key: str, chunks: Iterator[bytes]) -> None:
        self.key = key
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            PROBES.add(self.key, "produced")
            yield chunk

    def close(self) -> None:
        PROBES.add(self.key, "closed")


class _ClosingFile(io.BytesIO):
    def __init__(self, key: str) -> None:
        super().__init__(FILE_BODY)
        self.key = key

    def close(self) -> None:
        PROBES.add(self.key, "closed")
        super().close()


def _disconnect_body(key: str, gate: int) -> Iterator[bytes]:
    yield b"x" * CHUNK_SIZE
    opened = wait_for_gate(gate)
    PROBES.record(key, "gate_opened", opened)
    for _ in range(DISCONNECT_CHUNKS):
        yield b"x" * CHUNK_SIZE


def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """The conformance app; see the module docstring for its routes."""
    path = environ.get("PATH_INFO", "")
    query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    text = [("Content-Type", "text/plain")]
    if path.startswith(PROBE_PREFIX):
        body = PROBES.answer(path, environ.get("QUERY_STRING", ""))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path.startswith("/echo"):
        body = json.dumps(_echo(environ)).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/lines":
        body = json.dumps(_lines(environ)).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/hello":
        start_response("200 OK", [*text, ("Content-Length", "5")])
        return [b"hello"]
    if path in ("/status/204", "/status/304"):
        start_response(path[-3:] + (" No Content" if path.endswith("204") else " Not Modified"), [])
        return []
    if path == "/set-cookies":
        start_response(
            "200 OK", [*text, ("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/")]
        )
        return [b"two cookies"]
    if path == "/stream":
        gate = int(query["gate"])

        def stream() -> Iterator[bytes]:
            yield b"first chunk\n"
            opened = wait_for_gate(gate)
            yield f"last chunk, gate {'opened' if opened else 'closed'}\n".encode()

        start_response("200 OK", text)
        return stream()
    if path == "/error-before":
        raise RuntimeError("conformance app: error before start_response")
    if path == "/error-after":

        def broken() -> Iterator[bytes]:
            yield b"partial body\n"
            raise RuntimeError("conformance app: error after the first chunk")

        start_response("200 OK", text)
        return broken()
    if path == "/exc-info":
        start_response("200 OK", text)
        try:
            raise ValueError("conformance app: caught before any body")
        except ValueError:
            start_response("500 Internal Server Error", text, sys.exc_info())
        return [b"replaced by exc_info"]
    if path == "/no-start":
        return [b"start_response was never called"]
    if path == "/empty":
        start_response("200 OK", text)
        return []
    if path == "/write":
        write = start_response("200 OK", text)
        write(b"from write(), ")
        return [b"then from the iterable"]
    if path == "/close":
        start_response("200 OK", text)
        return _Recorded(query["key"], iter([b"one ", b"two"]))
    if path == "/truncate":
        start_response("200 OK", [*text, ("Content-Length", "5")])
        return _Recorded(query["key"], iter([b"12345", b"67890"]))
    if path == "/endless":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        chunks = (b"x" * CHUNK_SIZE for _ in range(DISCONNECT_CHUNKS + 1))
        return _Recorded(query["key"], chunks)
    if path == "/disconnect":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _Recorded(query["key"], _disconnect_body(query["key"], int(query["gate"])))
    if path == "/file-wrapper":
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is None:
            start_response("501 Not Implemented", text)
            return [b"no wsgi.file_wrapper"]
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(FILE_BODY)))],
        )
        result: Iterable[bytes] = wrapper(_ClosingFile(query["key"]), 4096)
        return result
    start_response("404 Not Found", text)
    return [b"not found"]


application = mounted_asgi(wrap_wsgi_app(app))
