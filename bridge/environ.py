"""Build a PEP 3333 ``environ`` from an ASGI ``http`` scope (W→A, SPEC section A).

Rules:
1. Pure: no threads, no loops, no I/O. The streams (``wsgi.input``,
   ``wsgi.errors``) are created by the caller and passed in.
2. Every non-dotted value is a ``str`` in U+0000–U+00FF ("bytes as latin-1",
   PEP 3333 §Unicode Issues). Text from the scope is encoded to UTF-8 first,
   bytes from the scope are decoded as latin-1; nothing is ever unquoted.
3. Malformed requests raise :class:`~bridge.errors.ServerProtocolError` with
   ``status_hint=400``; the adapter turns that into a 400 response.
4. This runs on every request: header names are mapped through a bounded
   cache, the common path (ASCII path, no duplicate headers) does no extra work.

Choices where the specs are silent (documented in the README):
- ``path`` that does not start with ``root_path`` (on a segment boundary) is
  taken to come from a server that sends ``path`` *without* ``root_path``
  (the pre-2022 reading of ASGI www): ``PATH_INFO`` is then the whole ``path``.
- A ``root_path`` with a trailing ``/`` loses it, so ``SCRIPT_NAME`` is never
  ``"/"`` and ``PATH_INFO`` keeps its leading ``/``.
- ``raw_path`` (A8) is consulted only when ``path`` holds U+FFFD, the only case
  where it carries information ``path`` lost, and only if it agrees with ``path``.
- Duplicate ``Content-Type`` headers are joined like any other header (A13);
  duplicate ``Content-Length`` headers must agree (RFC 9112 §6.3) or it is a 400.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_to_bytes

from bridge.errors import ServerProtocolError
from bridge.types import Environ, Scope

__all__ = ["DUPLICATE_HEADER_LIMIT", "environ_from_scope"]

#: How many times one header name may repeat before the request is a 400.
#: A13: asgiref's fix for CVE-2025-14550 uses the same limit.
DUPLICATE_HEADER_LIMIT = 100

# Header name (as the server sends it, lower-case bytes) -> environ key, or ""
# to drop it. Precomputed for common names; grown up to _KEY_CACHE_MAX entries
# so that a client sending random names cannot make it grow without bound.
_KEY_CACHE_MAX = 2048
_KEY_CACHE: dict[bytes, str] = {}

_COOKIE = "HTTP_COOKIE"
_CONTENT_LENGTH = "CONTENT_LENGTH"


def _environ_key(name: bytes) -> str:
    # A15: names with "_" are dropped: "X-Auth_User" and "X-Auth-User" would
    # both become HTTP_X_AUTH_USER, letting one spoof the other (Django
    # CVE-2015-0219, gunicorn >= 22, nginx). A16: pseudo-headers never appear.
    if not name or b"_" in name or name[:1] == b":":
        return ""
    # bytes.upper() only touches ASCII; str.upper() would map "ÿ" to U+0178,
    # outside latin-1 (A2).
    lowered = name.lower()
    # A11: CGI gives these two their own keys, never HTTP_CONTENT_*.
    if lowered == b"content-type":
        return "CONTENT_TYPE"
    if lowered == b"content-length":
        return _CONTENT_LENGTH
    # A12 (RFC 3875 §4.1.18): "HTTP_" + upper-case name with "-" -> "_".
    return "HTTP_" + name.upper().replace(b"-", b"_").decode("latin-1")


for _name in (
    b"accept",
    b"accept-encoding",
    b"accept-language",
    b"authorization",
    b"cache-control",
    b"connection",
    b"content-length",
    b"content-type",
    b"cookie",
    b"host",
    b"if-modified-since",
    b"if-none-match",
    b"origin",
    b"referer",
    b"user-agent",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-requested-with",
):
    _KEY_CACHE[_name] = _environ_key(_name)
del _name


def _to_wsgi_str(text: str) -> str:
    """``text`` as PEP 3333 "bytes as latin-1": UTF-8 octets, one char each (A4, A7)."""
    if text.isascii():
        return text
    try:
        return text.encode("utf-8").decode("latin-1")
    except UnicodeEncodeError as exc:  # lone surrogates: no server sends them
        raise ServerProtocolError(f"path {text!r} cannot be encoded as UTF-8") from exc


def _split_root(full: str, script_name: str) -> str:
    """Return PATH_INFO: ``full`` minus the ``script_name`` prefix (A5).

    The prefix must end on a segment boundary ("/app" is not a prefix of
    "/application"). Otherwise the server sent ``path`` without ``root_path``,
    and ``full`` is PATH_INFO as it is (see the module docstring).
    """
    if not script_name:
        return full
    size = len(script_name)
    if full.startswith(script_name) and (len(full) == size or full[size] == "/"):
        return full[size:]
    return full


def _path_from_raw(scope: Scope, path: str, root_path: str) -> str | None:
    """Recover the request's octets from ``raw_path`` (A8), or None if unusable.

    ``raw_path`` is optional, may be ``None``, includes ``root_path`` under
    some servers and not others, and can be wrong (granian#531); it is used
    only if percent-decoding it reproduces ``path`` the way servers build it
    (``unquote(..., errors="replace")``).
    """
    raw = scope.get("raw_path")
    if not isinstance(raw, bytes):
        return None
    octets = unquote_to_bytes(raw.partition(b"?")[0])
    if octets.decode("utf-8", "replace") != path:
        octets = root_path.encode("utf-8") + octets
        if octets.decode("utf-8", "replace") != path:
            return None
    return octets.decode("latin-1")


def _content_length(values: str) -> str:
    """Validate a CONTENT_LENGTH value; duplicates arrive joined with ", " (A11)."""
    if values.isascii() and values.isdigit() and len(values) <= 18:
        return str(int(values))
    # RFC 9112 §6.3: repeated identical values ("5, 5") may be accepted as one;
    # anything else, or differing values, is unrecoverable -> 400.
    parts = {part.strip() for part in values.split(",")}
    if len(parts) == 1:
        (only,) = parts
        if only.isascii() and only.isdigit() and len(only) <= 18:
            return str(int(only))
    raise ServerProtocolError(f"invalid or conflicting Content-Length {values!r}", status_hint=400)


def _server_from_host(host: str | None, scheme: str) -> tuple[str, str]:
    """SERVER_NAME and SERVER_PORT from a Host header, else localhost (A17)."""
    default_port = "443" if scheme in ("https", "wss") else "80"
    if not host:
        return "localhost", default_port
    if host.startswith("["):  # IPv6 literal: "[::1]:8000"
        end = host.find("]")
        if end > 0:
            rest = host[end + 1 :]
            port = rest[1:] if rest.startswith(":") and rest[1:].isdigit() else default_port
            return host[: end + 1], port
        return host, default_port
    name, sep, port = host.rpartition(":")
    if sep and name and port.isascii() and port.isdigit():
        return name, port
    return host, default_port


def environ_from_scope(
    scope: Scope,
    wsgi_input: Any,
    wsgi_errors: Any,
    *,
    file_wrapper: Callable[..., Iterable[bytes]] | None = None,
    multiprocess: bool = True,
    use_raw_path: bool = True,
    duplicate_header_limit: int = DUPLICATE_HEADER_LIMIT,
) -> Environ:
    """Return the WSGI environ for an ASGI ``http`` scope (SPEC A1–A27).

    :param scope: the ASGI ``http`` connection scope, as the server gave it.
    :param wsgi_input: the object to expose as ``wsgi.input`` (a binary stream).
    :param wsgi_errors: the object to expose as ``wsgi.errors`` (a text stream).
    :param file_wrapper: exposed as ``wsgi.file_wrapper`` when given (A26).
    :param multiprocess: the value of ``wsgi.multiprocess`` (A24: ``True``
        unless the deployment is known to run a single process).
    :param use_raw_path: recover non-UTF-8 path octets from ``raw_path`` (A8).
    :param duplicate_header_limit: how often one header name may repeat (A13).
    :raises ServerProtocolError: (``status_hint`` 400) for a conflicting or
        invalid ``Content-Length``, too many repetitions of one header, or a
        path that cannot be encoded.
    """
    environ: Environ = {}
    multi: dict[str, list[str]] | None = None
    cache = _KEY_CACHE
    for name, value in scope.get("headers", ()):
        key = cache.get(name)
        if key is None:
            key = _environ_key(bytes(name))
            if len(cache) < _KEY_CACHE_MAX:
                cache[bytes(name)] = key
        if not key:
            continue
        text = value.decode("latin-1")  # A12: values are latin-1
        if key in environ:
            # A13: merge duplicates, but join *once* at the end: repeated
            # concatenation was the quadratic DoS CVE-2025-14550.
            if multi is None:
                multi = {}
            values = multi.get(key)
            if values is None:
                multi[key] = [environ[key], text]
            else:
                values.append(text)
        else:
            environ[key] = text
    if multi is not None:
        for key, values in multi.items():
            if len(values) > duplicate_header_limit:
                raise ServerProtocolError(
                    f"header {key} repeated {len(values)} times; at most "
                    f"{duplicate_header_limit} allowed",
                    status_hint=400,
                )
            # A14 (RFC 9113 §8.2.3): HTTP/2 cookie crumbs join with "; ".
            # A13 (RFC 9110 §5.3): every other field joins with ", ".
            environ[key] = ("; " if key == _COOKIE else ", ").join(values)
    length = environ.get(_CONTENT_LENGTH)
    if length is not None:
        environ[_CONTENT_LENGTH] = _content_length(length)

    scheme = scope.get("scheme") or "http"
    # A4: SCRIPT_NAME is root_path as latin-1 octets, "" when absent, never "/".
    root_path = scope.get("root_path") or ""
    script_name = _to_wsgi_str(root_path).rstrip("/")
    path = scope["path"]
    full = None
    if use_raw_path and "\ufffd" in path:
        full = _path_from_raw(scope, path, root_path)
    if full is None:
        # A7, A9: the percent-decoded path as UTF-8 octets; %2F stays "/".
        full = _to_wsgi_str(path)

    server = scope.get("server")
    if server and server[0] and server[1] is not None:
        server_name, server_port = str(server[0]), str(server[1])
    else:
        # A17: Unix socket ([path, None]) or no server: Host, then localhost.
        server_name, server_port = _server_from_host(environ.get("HTTP_HOST"), scheme)
    client = scope.get("client")
    if client:
        # A18: omitted when the server does not know the client.
        environ["REMOTE_ADDR"] = str(client[0])
        if client[1] is not None:
            environ["REMOTE_PORT"] = str(client[1])

    environ["REQUEST_METHOD"] = scope["method"]  # A3
    environ["SCRIPT_NAME"] = script_name
    environ["PATH_INFO"] = _split_root(full, script_name)  # A5
    # A10: always present, latin-1, still percent-encoded (never ascii: it
    # would raise on 8-bit octets).
    environ["QUERY_STRING"] = scope.get("query_string", b"").decode("latin-1")
    environ["SERVER_NAME"] = server_name
    environ["SERVER_PORT"] = server_port
    environ["SERVER_PROTOCOL"] = "HTTP/" + scope.get("http_version", "1.1")  # A19
    environ["wsgi.version"] = (1, 0)  # A20
    environ["wsgi.url_scheme"] = scheme  # A21
    environ["wsgi.input"] = wsgi_input  # A22
    environ["wsgi.errors"] = wsgi_errors  # A23
    environ["wsgi.multithread"] = True  # A24
    environ["wsgi.multiprocess"] = multiprocess
    environ["wsgi.run_once"] = False
    # A25: the stream ends at the end of the body, even without CONTENT_LENGTH
    # (chunked uploads); Werkzeug reads nothing without it.
    environ["wsgi.input_terminated"] = True
    if file_wrapper is not None:
        environ["wsgi.file_wrapper"] = file_wrapper  # A26
    # A27: extension keys are lower-case, dotted, with our own prefix.
    environ["bridge.asgi_scope"] = scope
    return environ
