"""The ASGI ``http`` scope built from a WSGI environ (ASGI app in a WSGI server).

Rules:
1. Pure: no threads, loops or I/O (a bounded cache of header names is the
   only module state); ``scope_from_environ`` runs once per request, so it
   does one pass over the environ and nothing else.
2. Every key follows SPEC section C, cited beside the code (C1-C12).
3. A fresh scope per request (C12): nothing mutable is shared between two
   scopes except the *values* of the lifespan state (C10 is a shallow copy).
4. An environ that cannot be expressed in ASGI (a non-latin-1 ``str``, which
   PEP 3333 forbids) is the server's fault: ``ServerProtocolError`` (400).

Choices where the specs are silent (documented in the README):
- ``root_path``/``path`` decode the latin-1 octets as UTF-8 with
  ``errors="replace"`` (C5), as ASGI servers and Werkzeug do, so ``/%FF``
  becomes ``"/\\ufffd"`` instead of crashing the request.
- ``raw_path`` comes from ``RAW_URI`` (gunicorn) or ``REQUEST_URI`` (uWSGI,
  mod_wsgi) without its query; when neither is present the key is *omitted*
  (C6), never reconstructed, because a reconstruction cannot restore ``%2F``.
- Only ``HTTP_CONTENT_TYPE`` and ``HTTP_CONTENT_LENGTH`` are skipped (C8):
  ``Content-Encoding`` and friends are ordinary request headers.
- An unknown or missing ``SERVER_PROTOCOL`` gives ``http_version="1.1"``.
- An unknown or malformed ``REMOTE_PORT`` gives port ``0`` (C9); a missing
  ``REMOTE_ADDR`` gives ``client=None``; a malformed ``SERVER_PORT`` or a
  missing ``SERVER_NAME`` gives ``server=None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.errors import ServerProtocolError
from bridge.types import Environ

__all__ = ["DEFAULT_EXTENSIONS", "scope_from_environ"]

# C1: spec_version "2.4" promises that send() raises an OSError subclass once
# the client is gone (ASGI www §Disconnected Client); AsgiToWsgi does.
_SPEC_VERSION = "2.4"

# C11: only what the adapter implements; never trailers, early hints, push or
# debug, which a WSGI server cannot carry; "tls" is not implemented.
DEFAULT_EXTENSIONS: Mapping[str, Mapping[str, Any]] = {"http.response.pathsend": {}}

# C2: ASGI www says http_version is one of "1.0", "1.1" or "2".
_HTTP_VERSIONS = {
    "HTTP/1.0": "1.0",
    "HTTP/1.1": "1.1",
    "HTTP/2": "2",
    "HTTP/2.0": "2",
}

# C8: the CGI variables that carry two headers without the HTTP_ prefix, and
# the prefixed duplicates some servers also set (wsgiref.validate forbids them).
_SKIPPED = frozenset({"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"})

# Environ key -> ASGI header name (b"" for keys that are not headers), so the
# per-request pass does one dict lookup per key. Bounded: the keys come from
# client headers, and a client sending ever new names must not grow it forever.
_HEADER_NAMES_MAX = 1024
_HEADER_NAMES: dict[str, bytes] = {}


def _decode_path(value: str) -> str:
    """C4/C5: latin-1 octets (PEP 3333 §Unicode Issues) back to UTF-8 text."""
    if value.isascii():
        return value
    return value.encode("latin-1").decode("utf-8", "replace")


def _port(value: object) -> int | None:
    try:
        port = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return port if 0 <= port <= 65535 else None


def _raw_path(uri: str) -> bytes | None:
    """C6: the request target without its query, as the server received it."""
    if not uri.startswith("/"):
        # absolute-form ("http://host/p?q", RFC 9112 §3.2.2): keep the path part.
        scheme_end = uri.find("://")
        if scheme_end < 0:
            return None  # asterisk-form or garbage: no path to report
        slash = uri.find("/", scheme_end + 3)
        uri = "/" if slash < 0 else uri[slash:]
    query = uri.find("?")
    if query >= 0:
        uri = uri[:query]
    return uri.encode("latin-1")


def _header_name(key: str) -> bytes:
    """C8: the ASGI header name of an environ key, ``b""`` when it is not a header; cached."""
    if key.startswith("HTTP_") and key not in _SKIPPED:
        # C8: HTTP_X_Y -> b"x-y" (CGI RFC 3875 §4.1.18 in reverse).
        name = key[5:].lower().replace("_", "-").encode("latin-1")
    else:
        name = b""
    if len(_HEADER_NAMES) < _HEADER_NAMES_MAX:
        _HEADER_NAMES[key] = name
    return name


def scope_from_environ(
    environ: Environ,
    *,
    state: Mapping[str, Any] | None = None,
    extensions: Mapping[str, Mapping[str, Any]] = DEFAULT_EXTENSIONS,
    asgi_version: str = "3.0",
) -> dict[str, Any]:
    """Build the ASGI ``http`` scope of one request from its WSGI ``environ``.

    :param environ: the PEP 3333 environ of the request.
    :param state: the lifespan state; the scope gets a shallow copy (C10), and
        no ``state`` key at all when ``None``.
    :param extensions: the ASGI extensions to advertise (C11); each value is
        copied so two scopes never share a dict.
    :param asgi_version: ``scope["asgi"]["version"]``: ``"2.0"`` for an ASGI 2
        app (F4, :func:`~bridge.lifespan.scope_asgi_version`).
    :returns: a fresh scope dict (C12).
    :raises ServerProtocolError: if a CGI variable holds a character outside
        latin-1, which PEP 3333 §Unicode Issues forbids.
    """
    get = environ.get
    names = _HEADER_NAMES
    try:
        headers: list[list[bytes]] = []
        for key, value in environ.items():
            name = names.get(key)
            if name is None:
                name = _header_name(key)
            if name:
                headers.append([name, value.encode("latin-1")])
        content_type = get("CONTENT_TYPE")
        if content_type:
            headers.append([b"content-type", content_type.encode("latin-1")])
        content_length = get("CONTENT_LENGTH")
        if content_length:
            headers.append([b"content-length", content_length.encode("latin-1")])

        # C4: root_path = dec(SCRIPT_NAME); path = root_path + dec(PATH_INFO).
        root_path = get("SCRIPT_NAME", "")
        if not root_path.isascii():
            root_path = _decode_path(root_path)
        path = get("PATH_INFO", "")
        if not path.isascii():
            path = _decode_path(path)
        path = root_path + path or "/"

        scope: dict[str, Any] = {
            "type": "http",
            # C1, F4: a fresh dict per scope (C12).
            "asgi": {"version": asgi_version, "spec_version": _SPEC_VERSION},
            # C2
            "http_version": _HTTP_VERSIONS.get(get("SERVER_PROTOCOL", ""), "1.1"),
            # C3
            "method": get("REQUEST_METHOD", "GET"),
            "scheme": get("wsgi.url_scheme", "http"),
            "path": path,
            # C7: still percent-encoded; latin-1, never ascii (which can raise).
            "query_string": get("QUERY_STRING", "").encode("latin-1"),
            "root_path": root_path,
            "headers": headers,
            "client": None,
            "server": None,
        }
        # C6
        uri = get("RAW_URI") or get("REQUEST_URI")
        if uri:
            raw_path = _raw_path(uri)
            if raw_path is not None:
                scope["raw_path"] = raw_path
    except UnicodeEncodeError as exc:
        raise ServerProtocolError(
            f"environ holds a non-latin-1 string ({exc.object!r}); PEP 3333 requires latin-1"
        ) from exc

    # C9: ports are ints; an unknown client port is 0, an unknown client None.
    remote_addr = get("REMOTE_ADDR")
    if remote_addr:
        scope["client"] = [remote_addr, _port(get("REMOTE_PORT")) or 0]
    server_name = get("SERVER_NAME")
    if server_name:
        server_port = _port(get("SERVER_PORT"))
        if server_port is not None:
            scope["server"] = [server_name, server_port]

    # C11, C12: a fresh dict per extension.
    scope["extensions"] = {name: dict(options) for name, options in extensions.items()}
    # C10: a shallow copy of the lifespan state, omitted without lifespan.
    if state is not None:
        scope["state"] = dict(state)
    return scope
