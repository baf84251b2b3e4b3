"""The matrix's scenarios: plain functions that raise ``AssertionError`` saying what was seen.

Each check is ``check(adapter, base_url, client)``: the adapter's matrix name
(:mod:`compat_suite.matrix.variants`), the running server's base URL and an
``httpx.Client`` bound to it. No pytest here: any project can run them against
its own deployment of the same apps. A :class:`Scenario` is one row of the
report: one idea, with the check each framework runs for it (raw apps get the
precise protocol checks; framework apps the user-level ones). Checks that can
only run once the server has stopped (lifespan shutdown) are ``after_stop``
checks, called as ``check(adapter, server_log)``.

The raw apps are :mod:`compat_suite.apps.conformance_wsgi` (framework ``wsgi``)
and :mod:`compat_suite.apps.conformance_asgi` (framework ``asgi``).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from compat_suite.apps.probes import DISCONNECT_CHUNKS, FILE_BODY, SHUTDOWN_MARKER, poll_probe
from compat_suite.gate import Gate

__all__ = ["SCENARIOS", "AfterStopCheck", "Check", "Scenario", "expect"]

Check = Callable[[str, str, httpx.Client], None]
AfterStopCheck = Callable[[str, str], None]

MiB = 1024 * 1024
#: Seconds a scenario waits for something that should be immediate (a streamed chunk).
SHORT_TIMEOUT = 5.0


def expect(condition: object, expected: str, seen: object) -> None:
    """Raise ``AssertionError("expected …; saw …")`` unless ``condition``."""
    if not condition:
        raise AssertionError(f"expected {expected}; saw {seen!r}")


def _json(response: httpx.Response) -> Any:
    expect(
        response.status_code == 200,
        "200 with a JSON body",
        (response.status_code, response.text[:300]),
    )
    return response.json()


def _environ(client: httpx.Client, url: str, **kwargs: Any) -> dict[str, Any]:
    data: dict[str, Any] = _json(client.get(url, **kwargs))
    return data


def _header_values(scope_facts: Mapping[str, Any], name: str) -> list[str]:
    return [value for key, value in scope_facts["headers"] if key == name]


def _probe(client: httpx.Client, key: str, fact: str) -> dict[str, Any]:
    return poll_probe(client, key, fact)


def _payload(size: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    index = 0
    while sent < size:
        piece = (index.to_bytes(8, "big") * (chunk // 8))[: min(chunk, size - sent)]
        sent += len(piece)
        index += 1
        yield piece


def _payload_bytes(size: int) -> bytes:
    return b"".join(_payload(size))


# ---------------------------------------------------------------- raw WSGI app (W→A)


def wsgi_environ_essentials(adapter: str, base_url: str, client: httpx.Client) -> None:
    data = _environ(client, "/echo")
    env = data["environ"]
    seen = {
        k: data[k]
        for k in (
            "environ_is_dict",
            "plain_keys_latin1_str",
            "server_port_type",
            "wsgi_version",
            "wsgi_version_is_tuple",
            "errors_is_text",
        )
    }
    seen.update(env)
    expect(data["environ_is_dict"], "type(environ) is dict (A1)", seen)
    expect(data["plain_keys_latin1_str"], "every CGI key a latin-1 str (A2)", seen)
    expect(
        data["server_port_type"] == "str" and env.get("SERVER_PORT"),
        "SERVER_PORT a non-empty str (A17)",
        seen,
    )
    expect(bool(env.get("SERVER_NAME")), "SERVER_NAME non-empty (A17)", seen)
    expect(env.get("SERVER_PROTOCOL") == "HTTP/1.1", "SERVER_PROTOCOL 'HTTP/1.1' (A19)", seen)
    expect(env.get("QUERY_STRING") == "", "QUERY_STRING '' when there is none (A10)", seen)
    expect(
        env.get("SCRIPT_NAME") == "" and env.get("PATH_INFO") == "/echo",
        "SCRIPT_NAME '' and PATH_INFO '/echo' (A4, A5)",
        seen,
    )
    expect(
        data["wsgi_version_is_tuple"] and data["wsgi_version"] == [1, 0],
        "wsgi.version == (1, 0) (A20)",
        seen,
    )
    expect(env.get("wsgi.url_scheme") == "http", "wsgi.url_scheme 'http' (A21)", seen)
    expect(data["errors_is_text"], "wsgi.errors a text stream (A23)", seen)
    expect(
        env.get("wsgi.multithread") is True and env.get("wsgi.run_once") is False,
        "multithread True, run_once False (A24)",
        seen,
    )


def wsgi_content_headers(adapter: str, base_url: str, client: httpx.Client) -> None:
    data = _json(
        client.post(
            "/echo", content=b"a=1", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
    )
    env, headers = data["environ"], data["headers"]
    seen = {
        "CONTENT_TYPE": env.get("CONTENT_TYPE"),
        "CONTENT_LENGTH": env.get("CONTENT_LENGTH"),
        **headers,
    }
    expect(
        env.get("CONTENT_TYPE") == "application/x-www-form-urlencoded"
        and env.get("CONTENT_LENGTH") == "3",
        "CONTENT_TYPE and CONTENT_LENGTH='3' (A11)",
        seen,
    )
    expect(
        "HTTP_CONTENT_TYPE" not in headers and "HTTP_CONTENT_LENGTH" not in headers,
        "no HTTP_CONTENT_* keys (A11)",
        seen,
    )
    expect(data["body_length"] == 3, "a 3-byte body", data["body_length"])


def wsgi_unicode_path(adapter: str, base_url: str, client: httpx.Client) -> None:
    env = _environ(client, "/echo/caf%C3%A9/%E4%B8%AD")["environ"]
    wanted = "/echo/café/中".encode().decode("latin-1")
    expect(
        env.get("PATH_INFO") == wanted,
        f"PATH_INFO {wanted!r} (UTF-8 octets as latin-1, A7)",
        env.get("PATH_INFO"),
    )


def wsgi_percent_slash(adapter: str, base_url: str, client: httpx.Client) -> None:
    env = _environ(client, "/echo/a%2Fb")["environ"]
    expect(
        env.get("PATH_INFO") == "/echo/a/b",
        "PATH_INFO '/echo/a/b' (%2F decoded, A9)",
        env.get("PATH_INFO"),
    )


def wsgi_non_utf8_path(adapter: str, base_url: str, client: httpx.Client) -> None:
    env = _environ(client, "/echo/%FF")["environ"]
    expect(
        env.get("PATH_INFO") == "/echo/\xff",
        "PATH_INFO '/echo/\\xff', as a WSGI server gives (A8)",
        env.get("PATH_INFO"),
    )


def wsgi_root_path(adapter: str, base_url: str, client: httpx.Client) -> None:
    env = _environ(client, "/mnt/echo/x")["environ"]
    seen = (env.get("SCRIPT_NAME"), env.get("PATH_INFO"))
    expect(
        seen == ("/mnt", "/echo/x"),
        "SCRIPT_NAME '/mnt', PATH_INFO '/echo/x' under root_path '/mnt' (A4, A5)",
        seen,
    )


def wsgi_query_string(adapter: str, base_url: str, client: httpx.Client) -> None:
    env = _environ(client, "/echo?a=1&a=2&b=%20%C3%A9")["environ"]
    expect(
        env.get("QUERY_STRING") == "a=1&a=2&b=%20%C3%A9",
        "QUERY_STRING as sent, not unquoted (A10)",
        env.get("QUERY_STRING"),
    )


_8BIT_TARGET = b"/echo?q=caf\xe9&p=%FF"


def _raw_get_json(base_url: str, target: bytes) -> Any:
    """GET a raw request target (bytes no HTTP client would send) and parse the JSON answer."""
    with _connect(base_url) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: matrix\r\nConnection: close\r\n\r\n")
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
    expect(response.status == 200, "200 with a JSON body", (response.status, body[:200]))
    return json.loads(body)


def wsgi_query_8bit(adapter: str, base_url: str, client: httpx.Client) -> None:
    env = _raw_get_json(base_url, _8BIT_TARGET)["environ"]
    expect(
        env.get("QUERY_STRING") == "q=caf\xe9&p=%FF",
        "QUERY_STRING 'q=caf\\xe9&p=%FF' (latin-1, A10)",
        env.get("QUERY_STRING"),
    )


def wsgi_duplicate_headers(adapter: str, base_url: str, client: httpx.Client) -> None:
    headers = _json(client.get("/echo", headers=[("X-Dup", "a"), ("X-Dup", "b")]))["headers"]
    value = headers.get("HTTP_X_DUP")
    expect(
        value is not None and [v.strip() for v in value.split(",")] == ["a", "b"],
        "HTTP_X_DUP 'a, b' (duplicates joined with ',', A13)",
        value,
    )


def wsgi_cookies(adapter: str, base_url: str, client: httpx.Client) -> None:
    headers = _json(client.get("/echo", headers=[("Cookie", "a=1"), ("Cookie", "b=2")]))["headers"]
    expect(
        headers.get("HTTP_COOKIE") == "a=1; b=2",
        "HTTP_COOKIE 'a=1; b=2' (joined with '; ', A14)",
        headers.get("HTTP_COOKIE"),
    )


def wsgi_underscore_header(adapter: str, base_url: str, client: httpx.Client) -> None:
    headers = _json(client.get("/echo", headers={"X_Spoof": "evil"}))["headers"]
    expect(
        "HTTP_X_SPOOF" not in headers,
        "a header named with '_' dropped (A15)",
        headers.get("HTTP_X_SPOOF"),
    )


def echo_chunked_upload(adapter: str, base_url: str, client: httpx.Client) -> None:
    size = 3 * MiB + 17
    data = _json(client.post("/echo", content=_payload(size)))
    expect(
        data["body_length"] == size,
        f"the whole {size}-byte chunked body (A25, D1)",
        data["body_length"],
    )
    expect(
        data["body_sha256"] == hashlib.sha256(_payload_bytes(size)).hexdigest(),
        "the same bytes",
        "a different digest",
    )


def echo_large_upload(adapter: str, base_url: str, client: httpx.Client) -> None:
    body = _payload_bytes(16 * MiB)
    data = _json(client.post("/echo", content=body))
    seen = (data["body_length"], data["body_sha256"][:12])
    expect(
        data["body_length"] == len(body)
        and data["body_sha256"] == hashlib.sha256(body).hexdigest(),
        f"{len(body)} bytes with Content-Length, unchanged",
        seen,
    )


def _lines_body() -> bytes:
    # About 900 KiB of lines up to 306 bytes long, every 50th one empty, and
    # a last line without a newline; below bridge's 1 MiB in-memory threshold.
    lines = []
    for index in range(6000):
        length = (index * 7919) % 301
        lines.append(b"\n" if index % 50 == 0 else b"%d:" % index + b"l" * length + b"\n")
    return b"".join(lines) + b"the last line, without a newline"


def wsgi_input_lines(adapter: str, base_url: str, client: httpx.Client) -> None:
    body = _lines_body()
    parts = body.split(b"\n")
    lines = [part + b"\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    data = _json(
        client.post(
            "/lines",
            # In 64 KiB pieces, so the server delivers several chunks and lines
            # straddle them.
            content=(body[i : i + 64 * 1024] for i in range(0, len(body), 64 * 1024)),
            headers={"Content-Length": str(len(body)), "X-Lines": str(len(lines))},
        )
    )
    wanted = {"lines": len(lines), "sha256": hashlib.sha256(body).hexdigest(), "split_ok": True}
    expect(
        data == wanted,
        f"{len(lines)} lines by readline() then iteration, each up to its newline (A22)",
        data,
    )


def raw_head(adapter: str, base_url: str, client: httpx.Client) -> None:
    response = client.head("/hello")
    seen = (response.status_code, response.headers.get("content-length"), response.content)
    expect(seen == (200, "5", b""), "200, Content-Length '5' kept, no body (B18, D10)", seen)


def _status_check(code: int) -> Check:
    def check(adapter: str, base_url: str, client: httpx.Client) -> None:
        response = client.get(f"/status/{code}")
        seen = (response.status_code, response.content)
        expect(seen == (code, b""), f"{code} with no body", seen)
        again = client.get("/hello")
        expect(
            again.status_code == 200,
            f"the connection still usable after the {code}",
            again.status_code,
        )

    check.__name__ = f"status_{code}"
    return check


def raw_set_cookies(adapter: str, base_url: str, client: httpx.Client) -> None:
    values = client.get("/set-cookies").headers.get_list("set-cookie")
    expect(
        values == ["a=1; Path=/", "b=2; Path=/"],
        "two separate Set-Cookie headers, in order (B8)",
        values,
    )


def _error_before(path: str) -> Check:
    def check(adapter: str, base_url: str, client: httpx.Client) -> None:
        response = client.get(path)
        expect(
            response.status_code == 500,
            "500 for an exception before the headers (B17, D9)",
            response.status_code,
        )

    return check


def _error_after(adapter: str, base_url: str, client: httpx.Client) -> None:
    try:
        response = client.get("/error-after")
    except httpx.TransportError:
        return  # aborted: what the spec asks
    raise AssertionError(
        "expected the connection aborted after an exception mid-body (B17, D9); saw a complete "
        f"{response.status_code} response {response.content!r}"
    )


def wsgi_exc_info(adapter: str, base_url: str, client: httpx.Client) -> None:
    response = client.get("/exc-info")
    seen = (response.status_code, response.content)
    expect(
        seen == (500, b"replaced by exc_info"),
        "exc_info before the body replaces the status (B5)",
        seen,
    )


def _no_start(adapter: str, base_url: str, client: httpx.Client) -> None:
    response = client.get("/no-start")
    expect(
        response.status_code == 500,
        "500 when the app never starts the response (B12, D8)",
        response.status_code,
    )


def wsgi_write(adapter: str, base_url: str, client: httpx.Client) -> None:
    response = client.get("/write")
    expect(
        response.content == b"from write(), then from the iterable",
        "write() data before the iterable's (B13)",
        response.content,
    )


def wsgi_empty(adapter: str, base_url: str, client: httpx.Client) -> None:
    response = client.get("/empty")
    seen = (response.status_code, response.content)
    expect(seen == (200, b""), "return [] gives 200 with an empty body (B11)", seen)


def wsgi_close_once(adapter: str, base_url: str, client: httpx.Client) -> None:
    key = uuid.uuid4().hex
    body = client.get("/close", params={"key": key}).content
    expect(body == b"one two", "the body 'one two'", body)
    facts = _probe(client, key, "closed")
    expect(facts.get("closed") == 1, "close() called exactly once (B15)", facts)


def wsgi_truncate(adapter: str, base_url: str, client: httpx.Client) -> None:
    key = uuid.uuid4().hex
    try:
        body = client.get("/truncate", params={"key": key}).content
    except httpx.TransportError as exc:
        body = f"transport error: {exc}".encode()
    expect(body == b"12345", "the body cut at Content-Length: 5 (B14)", body)
    facts = _probe(client, key, "closed")
    expect(facts.get("closed") == 1, "close() called exactly once (B14, B15)", facts)


def wsgi_file_wrapper(adapter: str, base_url: str, client: httpx.Client) -> None:
    key = uuid.uuid4().hex
    response = client.get("/file-wrapper", params={"key": key})
    expect(
        response.content == FILE_BODY,
        f"the file's {len(FILE_BODY)} bytes (A26)",
        (response.status_code, len(response.content)),
    )
    facts = _probe(client, key, "closed")
    expect(facts.get("closed") == 1, "the file closed exactly once (A26)", facts)


def _connect(base_url: str) -> socket.socket:
    parts = urlsplit(base_url)
    return socket.create_connection(
        (parts.hostname or "127.0.0.1", parts.port or 80), timeout=SHORT_TIMEOUT * 2
    )


def _start_then_drop(base_url: str, path: str, gate: Gate) -> None:
    """GET ``path``, read some body, then close the connection while the app waits at ``gate``."""
    with _connect(base_url) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: matrix\r\n\r\n".encode())
        received = b""
        while b"\r\n\r\n" not in received or len(received) < 1024:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        status_line = received.split(b"\r\n", 1)[0]
        status = status_line.split(b" ")[1:2]
        expect(status == [b"200"], "a 200 that starts streaming", received[:60])
        gate.wait_for_arrival()


def wsgi_disconnect(adapter: str, base_url: str, client: httpx.Client) -> None:
    key = uuid.uuid4().hex
    with Gate() as gate:
        _start_then_drop(base_url, f"/disconnect?key={key}&gate={gate.port}", gate)
        gate.open()
        facts = _probe(client, key, "closed")
    expect(
        facts.get("closed") == 1,
        "the iterable closed exactly once after the client left (B15, B19)",
        facts,
    )
    expect(
        facts.get("produced", 0) <= DISCONNECT_CHUNKS,
        "iteration stopped before the end (B19)",
        facts,
    )


def asgi_disconnect(adapter: str, base_url: str, client: httpx.Client) -> None:
    key = uuid.uuid4().hex
    with Gate() as gate:
        _start_then_drop(base_url, f"/disconnect?key={key}&gate={gate.port}", gate)
        gate.open()
        facts = _probe(client, key, "disconnect")
    expect(
        facts.get("disconnect") is True and not facts.get("completed"),
        "http.disconnect delivered before the app finished (D7)",
        facts,
    )


# ---------------------------------------------------------------- raw ASGI app (A→W)


def asgi_scope_essentials(adapter: str, base_url: str, client: httpx.Client) -> None:
    data = _environ(client, "/echo")
    seen = {
        k: data.get(k)
        for k in (
            "asgi",
            "http_version",
            "method",
            "scheme",
            "client",
            "server",
            "root_path",
            "path",
            "query_string",
            "extensions",
            "header_types_ok",
        )
    }
    asgi = data.get("asgi") or {}
    expect(asgi.get("version") == "3.0", "asgi.version '3.0' (C1)", seen)
    expect(data.get("http_version") == "1.1", "http_version '1.1' (C2)", seen)
    expect(
        data.get("method") == "GET" and data.get("scheme") == "http",
        "method GET, scheme http (C3)",
        seen,
    )
    expect(
        data.get("path") == "/echo" and data.get("root_path") == "",
        "path '/echo', root_path '' (C4)",
        seen,
    )
    expect(data.get("query_string") == "", "query_string b'' (C7)", seen)
    expect(data.get("header_types_ok"), "headers as [bytes, bytes] (C8)", seen)
    client_addr, server_addr = data.get("client"), data.get("server")
    expect(client_addr is None or isinstance(client_addr[1], int), "client port an int (C9)", seen)
    expect(server_addr is None or isinstance(server_addr[1], int), "server port an int (C9)", seen)
    forbidden = {
        "http.response.trailers",
        "http.response.early_hint",
        "http.response.push",
        "http.response.debug",
    }
    expect(
        not forbidden & set(data.get("extensions", [])),
        "no trailers/early_hint/push/debug advertised (C11)",
        seen,
    )


def asgi_content_headers(adapter: str, base_url: str, client: httpx.Client) -> None:
    data = _json(
        client.post(
            "/echo", content=b"a=1", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
    )
    seen = data["headers"]
    expect(
        _header_values(data, "content-type") == ["application/x-www-form-urlencoded"],
        "one content-type header (C8)",
        seen,
    )
    expect(
        _header_values(data, "content-length") == ["3"], "one content-length header '3' (C8)", seen
    )


def asgi_unicode_path(adapter: str, base_url: str, client: httpx.Client) -> None:
    data = _environ(client, "/echo/caf%C3%A9/%E4%B8%AD")
    expect(data.get("path") == "/echo/café/中", "path '/echo/café/中' (C4)", data.get("path"))


def asgi_percent_slash(adapter: str, base_url: str, client: httpx.Client) -> None:
    data = _environ(client, "/echo/a%2Fb")
    expect(
        data.get("path") == "/echo/a/b",
        "path '/echo/a/b' (%2F decoded by the server, C4)",
        data.get("path"),
    )


def asgi_non_utf8_path(adapter: str, base_url: str, client: httpx.Client) -> None:
    response = client.get("/echo/%FF")
    data = _json(response)
    expect(
        data.get("path") == "/echo/\ufffd",
        "path '/echo/\\ufffd' (decoded with 'replace', C5)",
        data.get("path"),
    )


def asgi_root_path(adapter: str, base_url: str, client: httpx.Client) -> None:
    data = _environ(client, "/mnt/echo/x")
    seen = (data.get("root_path"), data.get("path"))
    expect(
        seen == ("/mnt", "/mnt/echo/x"),
        "root_path '/mnt' and path '/mnt/echo/x' (C4: path includes root_path)",
        seen,
    )


def asgi_query_string(adapter: str, base_url: str, client: httpx.Client) -> None:
    data = _environ(client, "/echo?a=1&a=2&b=%20%C3%A9")
    expect(
        data.get("query_string") == "a=1&a=2&b=%20%C3%A9",
        "query_string as sent, still percent-encoded (C7)",
        data.get("query_string"),
    )


def asgi_query_8bit(adapter: str, base_url: str, client: httpx.Client) -> None:
    data = _raw_get_json(base_url, _8BIT_TARGET)
    expect(
        data.get("query_string") == "q=caf\xe9&p=%FF",
        "query_string b'q=caf\\xe9&p=%FF' (C7)",
        data.get("query_string"),
    )


def asgi_duplicate_headers(adapter: str, base_url: str, client: httpx.Client) -> None:
    data = _json(client.get("/echo", headers=[("X-Dup", "a"), ("X-Dup", "b")]))
    values = [v.strip() for joined in _header_values(data, "x-dup") for v in joined.split(",")]
    expect(values == ["a", "b"], "x-dup carrying 'a' and 'b' (C8)", _header_values(data, "x-dup"))


def asgi_cookies(adapter: str, base_url: str, client: httpx.Client) -> None:
    data = _json(client.get("/echo", headers=[("Cookie", "a=1"), ("Cookie", "b=2")]))
    cookies = _header_values(data, "cookie")
    expect(
        cookies in (["a=1; b=2"], ["a=1", "b=2"]),
        "cookie 'a=1; b=2' (or two cookie headers)",
        cookies,
    )


def asgi_pathsend(adapter: str, base_url: str, client: httpx.Client) -> None:
    response = client.get("/pathsend")
    seen = (response.status_code, len(response.content), response.content[:60])
    expect(
        response.status_code == 200 and response.content == FILE_BODY,
        f"http.response.pathsend advertised and the file's {len(FILE_BODY)} bytes sent (D12)",
        seen,
    )


def asgi_lifespan_startup(adapter: str, base_url: str, client: httpx.Client) -> None:
    data = _environ(client, "/lifespan")
    expect(
        data.get("has_state") and data.get("started") is True,
        "startup ran before the first request, state in scope (E3)",
        data,
    )


def asgi_lifespan_state(adapter: str, base_url: str, client: httpx.Client) -> None:
    first = _environ(client, "/lifespan")
    second = _environ(client, "/lifespan")
    expect(
        first.get("has_state") and second.get("has_state"),
        "scope['state'] on every request (C10)",
        (first, second),
    )
    expect(
        second.get("leaked") is None,
        "a top-level state assignment not leaking to the next request (C10)",
        second,
    )
    expect(
        second.get("hits", 0) > first.get("hits", 0),
        "shared objects in the state stay shared (E10)",
        (first, second),
    )


def asgi_first_request(adapter: str, base_url: str, client: httpx.Client) -> None:
    """Serve one request, so the app has started (E1) and has something to shut down."""
    _environ(client, "/lifespan")


def asgi_lifespan_shutdown(adapter: str, server_log: str) -> None:
    expect(
        SHUTDOWN_MARKER in server_log,
        "lifespan.shutdown run when the server stopped (E6)",
        # The tail shows how the server ended (killed after its grace, a hang...).
        "no shutdown in the server log: " + server_log[-1200:],
    )


# ---------------------------------------------------------------- any app


def _streaming(path: str) -> Check:
    def check(adapter: str, base_url: str, client: httpx.Client) -> None:
        with Gate() as gate:
            url = f"{path}?gate={gate.port}"
            with client.stream("GET", url, timeout=SHORT_TIMEOUT * 4) as response:
                gate.wait_for_arrival()
                # The app now waits at the gate: the first chunk must already be on its way.
                received = b""
                chunks = response.iter_bytes()
                try:
                    while b"first chunk\n" not in received:
                        received += next(chunks)
                except (StopIteration, httpx.ReadTimeout):
                    raise AssertionError(
                        "expected the first chunk before the last one was produced (B10, D5); "
                        f"saw {received!r} while the app waited"
                    ) from None
                gate.open()
                received += b"".join(chunks)
        expect(b"last chunk, gate opened" in received, "the last chunk after the gate", received)

    return check


def _head(path: str) -> Check:
    def check(adapter: str, base_url: str, client: httpx.Client) -> None:
        response = client.head(path)
        seen = (response.status_code, response.content)
        expect(seen == (200, b""), "HEAD: 200 and no body", seen)

    return check


def _concurrency(hello: str, stream: str) -> Check:
    def check(adapter: str, base_url: str, client: httpx.Client) -> None:
        with Gate() as gate, httpx.Client(base_url=base_url, timeout=SHORT_TIMEOUT * 4) as streamer:
            outcome: list[bytes | str] = []

            def hold() -> None:
                try:
                    outcome.append(streamer.get(f"{stream}?gate={gate.port}").content)
                except httpx.HTTPError as exc:  # data for the report, not a thread's traceback
                    outcome.append(f"{type(exc).__name__}: {exc}")

            holder = threading.Thread(target=hold)
            holder.start()
            try:
                gate.wait_for_arrival()

                def fetch(_: int) -> int:
                    with httpx.Client(base_url=base_url, timeout=SHORT_TIMEOUT) as other:
                        return other.get(hello).status_code

                with ThreadPoolExecutor(8) as pool:
                    try:
                        statuses = list(pool.map(fetch, range(8)))
                    except httpx.TimeoutException:
                        statuses = ["timed out"]  # type: ignore[list-item]
            finally:
                gate.open()
                holder.join(SHORT_TIMEOUT * 5)
        expect(
            statuses == [200] * 8,
            "8 parallel requests served while another one is in progress",
            statuses,
        )
        held = outcome[0] if outcome else ""
        expect(
            isinstance(held, bytes) and b"gate opened" in held, "the held request finished", outcome
        )

    return check


def _keep_alive(path: str) -> Check:
    def check(adapter: str, base_url: str, client: httpx.Client) -> None:
        parts = urlsplit(base_url)
        conn = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=SHORT_TIMEOUT * 2
        )
        try:
            conn.request("GET", path)
            first = conn.getresponse()
            first.read()
            sock = conn.sock
            conn.request("GET", path)
            second = conn.getresponse()
            second.read()
            seen = (
                first.status,
                second.status,
                "same connection" if conn.sock is sock and sock is not None else "reconnected",
            )
        finally:
            conn.close()
        expect(
            seen == (200, 200, "same connection"), "two requests on one kept-alive connection", seen
        )

    return check


# ---------------------------------------------------------------- framework apps


def fw_hello(adapter: str, base_url: str, client: httpx.Client) -> None:
    response = client.get("/")
    expect(
        response.status_code == 200 and response.text.startswith("hello from"),
        "200 'hello from …'",
        (response.status_code, response.text[:80]),
    )


def fw_unicode_path(adapter: str, base_url: str, client: httpx.Client) -> None:
    data = _json(client.get("/unicode/caf%C3%A9"))
    expect(data.get("name") == "café", "the route parameter 'café'", data)


def fw_query(adapter: str, base_url: str, client: httpx.Client) -> None:
    data = _json(client.get("/query?a=1&a=2&b=%C3%A9"))
    expect(data.get("args") == {"a": ["1", "2"], "b": ["é"]}, "a=['1','2'], b=['é']", data)


def fw_cookies(adapter: str, base_url: str, client: httpx.Client) -> None:
    data = _json(client.get("/cookies", headers={"Cookie": "a=1; b=2"}))
    expect(data.get("cookies") == {"a": "1", "b": "2"}, "cookies a=1 and b=2", data)


def fw_set_cookie(adapter: str, base_url: str, client: httpx.Client) -> None:
    values = client.get("/set-cookie").headers.get_list("set-cookie")
    names = [value.strip().split("=", 1)[0] for value in values]
    expect(
        names == ["flavour", "session"], "two separate Set-Cookie headers: flavour, session", values
    )


def fw_form(adapter: str, base_url: str, client: httpx.Client) -> None:
    data = _json(client.post("/form", data={"a": ["1", "2"], "b": "é"}))
    expect(data.get("form") == {"a": ["1", "2"], "b": ["é"]}, "the form fields back", data)


def fw_json(adapter: str, base_url: str, client: httpx.Client) -> None:
    payload = {"name": "café", "list": [1, 2, 3]}
    data = _json(client.post("/json", json=payload))
    expect(data.get("json") == payload, "the JSON document back", data)


def fw_chunked_upload(adapter: str, base_url: str, client: httpx.Client) -> None:
    size = 3 * MiB + 17
    data = _json(client.post("/upload", content=_payload(size)))
    seen = (data.get("bytes"), str(data.get("sha256"))[:12])
    expect(
        data.get("bytes") == size
        and data.get("sha256") == hashlib.sha256(_payload_bytes(size)).hexdigest(),
        f"all {size} bytes of a chunked upload",
        seen,
    )


def fw_large_upload(adapter: str, base_url: str, client: httpx.Client) -> None:
    body = _payload_bytes(16 * MiB)
    data = _json(client.post("/upload", content=body))
    seen = (data.get("bytes"), str(data.get("sha256"))[:12])
    expect(
        data.get("bytes") == len(body) and data.get("sha256") == hashlib.sha256(body).hexdigest(),
        f"all {len(body)} bytes with Content-Length",
        seen,
    )


def fw_download(adapter: str, base_url: str, client: httpx.Client) -> None:
    size = 8 * MiB + 3
    response = client.get(f"/download/{size}")
    seen = (response.status_code, len(response.content), response.headers.get("content-length"))
    expect(seen == (200, size, str(size)), f"200 with {size} streamed bytes", seen)


def fw_error(adapter: str, base_url: str, client: httpx.Client) -> None:
    response = client.get("/error")
    expect(response.status_code == 500, "500 for a view that raises", response.status_code)


def fw_redirect(adapter: str, base_url: str, client: httpx.Client) -> None:
    response = client.get("/redirect")
    seen = (response.status_code, response.headers.get("location"))
    expect(seen == (302, "/"), "302 to '/'", seen)


def fw_lifespan_state(adapter: str, base_url: str, client: httpx.Client) -> None:
    response = client.get("/lifespan")
    expect(
        response.status_code == 200,
        "200: lifespan state reached the route (C10, E3)",
        (response.status_code, response.text[:200]),
    )


# ---------------------------------------------------------------- the rows


@dataclass(frozen=True)
class Scenario:
    """One row of the matrix.

    :param name: the row id (``server-framework-adapter-<name>`` is a cell id).
    :param title: what it checks, in words.
    :param spec: the SPEC.md items it derives from.
    :param checks: the check each framework runs; a framework not listed is "not applicable".
    :param after_stop: checks that run on the server's log once it stopped. A framework
        with both runs its ``checks`` entry first, while the server is up, to set the
        stage; the scenario then has one cell, failed by whichever of the two fails.
    """

    name: str
    title: str
    spec: str
    checks: Mapping[str, Check] = field(default_factory=dict)
    after_stop: Mapping[str, AfterStopCheck] = field(default_factory=dict)

    @property
    def frameworks(self) -> frozenset[str]:
        """Frameworks this row applies to."""
        return frozenset(self.checks) | frozenset(self.after_stop)


_RAW = ("wsgi", "asgi")
WSGI_FRAMEWORKS = ("flask", "django")
ASGI_FRAMEWORKS = ("fastapi", "starlette", "django-asgi")
_DJANGOS = ("flask", "django", "django-asgi")  # the apps with the full user-level route set


def _same(check: Check, *frameworks: str) -> dict[str, Check]:
    return dict.fromkeys(frameworks, check)


_HELLO = {"wsgi": "/hello", "asgi": "/hello"}

#: Every scenario, in report order.
SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "environ-essentials",
        "environ/scope keys and types",
        "A1-A24, C1-C12",
        {"wsgi": wsgi_environ_essentials, "asgi": asgi_scope_essentials},
    ),
    Scenario(
        "content-headers",
        "Content-Type/-Length as CGI keys / headers",
        "A11, C8",
        {"wsgi": wsgi_content_headers, "asgi": asgi_content_headers},
    ),
    Scenario(
        "unicode-path",
        "UTF-8 percent-encoded path",
        "A7, C4",
        {
            "wsgi": wsgi_unicode_path,
            "asgi": asgi_unicode_path,
            **_same(fw_unicode_path, *_DJANGOS, "starlette"),
        },
    ),
    Scenario(
        "percent-slash",
        "%2F in the path",
        "A9",
        {"wsgi": wsgi_percent_slash, "asgi": asgi_percent_slash},
    ),
    Scenario(
        "non-utf8-path",
        "%FF in the path",
        "A8, C5",
        {"wsgi": wsgi_non_utf8_path, "asgi": asgi_non_utf8_path},
    ),
    Scenario(
        "root-path",
        "mounted under a root path",
        "A4, A5, C4",
        {"wsgi": wsgi_root_path, "asgi": asgi_root_path},
    ),
    Scenario(
        "query-string",
        "query string passed as sent",
        "A10, C7",
        {
            "wsgi": wsgi_query_string,
            "asgi": asgi_query_string,
            **_same(fw_query, *_DJANGOS, "starlette"),
        },
    ),
    Scenario(
        "query-8bit",
        "raw 8-bit bytes in the query",
        "A10, C7",
        {"wsgi": wsgi_query_8bit, "asgi": asgi_query_8bit},
    ),
    Scenario(
        "duplicate-headers",
        "repeated request header",
        "A13, C8",
        {"wsgi": wsgi_duplicate_headers, "asgi": asgi_duplicate_headers},
    ),
    Scenario(
        "cookies",
        "two Cookie headers / cookie parsing",
        "A14",
        {"wsgi": wsgi_cookies, "asgi": asgi_cookies, **_same(fw_cookies, *_DJANGOS, "starlette")},
    ),
    Scenario(
        "underscore-header",
        "header names with '_' dropped",
        "A15",
        {"wsgi": wsgi_underscore_header},
    ),
    Scenario(
        "set-cookie",
        "two Set-Cookie response headers",
        "B8, D4",
        {
            "wsgi": raw_set_cookies,
            "asgi": raw_set_cookies,
            **_same(fw_set_cookie, *_DJANGOS, "starlette"),
        },
    ),
    Scenario("hello", "a plain GET", "-", _same(fw_hello, *WSGI_FRAMEWORKS, *ASGI_FRAMEWORKS)),
    Scenario("form", "urlencoded form post", "A11, A22", _same(fw_form, *_DJANGOS)),
    Scenario("json", "JSON post", "A22, D1", _same(fw_json, *_DJANGOS, "fastapi", "starlette")),
    Scenario(
        "chunked-upload",
        "chunked request body (no Content-Length)",
        "A25, D1",
        {
            **_same(echo_chunked_upload, *_RAW),
            **_same(fw_chunked_upload, *_DJANGOS, "fastapi", "starlette"),
        },
    ),
    Scenario(
        "large-upload",
        "16 MiB body with Content-Length",
        "A22, D1",
        {
            **_same(echo_large_upload, *_RAW),
            **_same(fw_large_upload, *_DJANGOS, "fastapi", "starlette"),
        },
    ),
    Scenario(
        "input-lines",
        "wsgi.input read by readline() and iteration",
        "A22",
        {"wsgi": wsgi_input_lines},
    ),
    Scenario(
        "streaming",
        "first chunk before the last is produced",
        "B10, D5",
        _same(_streaming("/stream"), *_RAW, *WSGI_FRAMEWORKS, *ASGI_FRAMEWORKS),
    ),
    Scenario(
        "download",
        "8 MiB streamed response",
        "B10, D5",
        _same(fw_download, *WSGI_FRAMEWORKS, *ASGI_FRAMEWORKS),
    ),
    Scenario(
        "head",
        "HEAD: headers, no body",
        "B18, D10",
        {**_same(raw_head, *_RAW), **_same(_head("/"), *_DJANGOS, "starlette")},
    ),
    Scenario("status-204", "204 No Content", "B18, D10", _same(_status_check(204), *_RAW)),
    Scenario("status-304", "304 Not Modified", "B18, D10", _same(_status_check(304), *_RAW)),
    Scenario("redirect", "302 with Location", "B8", _same(fw_redirect, *_DJANGOS)),
    Scenario(
        "error-before-headers",
        "exception before the response starts → 500",
        "B17, D9",
        {
            **_same(_error_before("/error-before"), *_RAW),
            **_same(_error_before("/error"), *WSGI_FRAMEWORKS, *ASGI_FRAMEWORKS),
        },
    ),
    Scenario(
        "error-after-headers",
        "exception mid-body → connection aborted",
        "B17, D9",
        _same(_error_after, *_RAW),
    ),
    Scenario("no-start", "app never starts the response → 500", "B12, D8", _same(_no_start, *_RAW)),
    Scenario(
        "exc-info",
        "start_response with exc_info before the body",
        "B4, B5",
        {"wsgi": wsgi_exc_info},
    ),
    Scenario("write", "the write() callable", "B2, B13", {"wsgi": wsgi_write}),
    Scenario("empty-body", "return [] → start and empty body", "B11", {"wsgi": wsgi_empty}),
    Scenario("close-once", "close() of the result exactly once", "B15", {"wsgi": wsgi_close_once}),
    Scenario(
        "content-length-cap", "body longer than Content-Length cut", "B14", {"wsgi": wsgi_truncate}
    ),
    Scenario(
        "disconnect",
        "client gone mid-stream: close() once / http.disconnect",
        "B15, B19, D7",
        {"wsgi": wsgi_disconnect, "asgi": asgi_disconnect},
    ),
    Scenario(
        "file-wrapper",
        "wsgi.file_wrapper sends the file, closes it",
        "A26",
        {"wsgi": wsgi_file_wrapper},
    ),
    Scenario("pathsend", "http.response.pathsend", "C11, D12", {"asgi": asgi_pathsend}),
    Scenario(
        "lifespan-startup",
        "startup before the first request",
        "E1-E3",
        {"asgi": asgi_lifespan_startup, **_same(fw_lifespan_state, "fastapi", "starlette")},
    ),
    Scenario(
        "lifespan-state",
        "state: shallow copy per request",
        "C10, E10",
        {"asgi": asgi_lifespan_state},
    ),
    Scenario(
        "lifespan-shutdown",
        "shutdown when the server stops",
        "E6",
        {"asgi": asgi_first_request},
        after_stop={"asgi": asgi_lifespan_shutdown},
    ),
    Scenario(
        "concurrency",
        "8 requests while one is in progress",
        "B1, A24",
        {
            **{k: _concurrency(v, "/stream") for k, v in _HELLO.items()},
            **_same(_concurrency("/", "/stream"), *WSGI_FRAMEWORKS, *ASGI_FRAMEWORKS),
        },
    ),
    Scenario(
        "keep-alive",
        "two requests on one connection",
        "-",
        {
            **{k: _keep_alive(v) for k, v in _HELLO.items()},
            **_same(_keep_alive("/"), *WSGI_FRAMEWORKS, *ASGI_FRAMEWORKS),
        },
    ),
)
