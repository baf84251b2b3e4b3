"""bridge.scope: the ASGI scope built from a WSGI environ (SPEC section C)."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge import scope as scope_module
from bridge.errors import ServerProtocolError
from bridge.scope import DEFAULT_EXTENSIONS, scope_from_environ
from bridge.types import Environ


def make_environ(**overrides: Any) -> Environ:
    environ: Environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "example.org",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for key, value in overrides.items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    return environ


def test_scope_type_and_asgi_version() -> None:
    # C1: spec 2.4 because send() raises ClientDisconnected (OSError) after a disconnect.
    scope = scope_from_environ(make_environ())
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}


def test_scope_asgi_version_for_an_asgi2_app() -> None:
    # F4: an ASGI 2 app is told "2.0"; the spec version stays ours (C1).
    scope = scope_from_environ(make_environ(), asgi_version="2.0")
    assert scope["asgi"] == {"version": "2.0", "spec_version": "2.4"}


@pytest.mark.parametrize(
    ("protocol", "expected"),
    [
        ("HTTP/1.0", "1.0"),
        ("HTTP/1.1", "1.1"),
        ("HTTP/2", "2"),
        ("HTTP/2.0", "2"),
        ("HTTP/9", "1.1"),
        (None, "1.1"),
    ],
)
def test_scope_http_version(protocol: str | None, expected: str) -> None:
    # C2
    assert scope_from_environ(make_environ(SERVER_PROTOCOL=protocol))["http_version"] == expected


@pytest.mark.parametrize(
    ("overrides", "method", "scheme"),
    [
        ({}, "GET", "http"),
        ({"REQUEST_METHOD": "POST", "wsgi.url_scheme": "https"}, "POST", "https"),
        ({"REQUEST_METHOD": "PROPFIND"}, "PROPFIND", "http"),
        ({"wsgi.url_scheme": None}, "GET", "http"),
    ],
)
def test_scope_method_and_scheme(overrides: dict[str, Any], method: str, scheme: str) -> None:
    # C3
    scope = scope_from_environ(make_environ(**overrides))
    assert (scope["method"], scope["scheme"]) == (method, scheme)


@pytest.mark.parametrize(
    ("script_name", "path_info", "root_path", "path"),
    [
        ("", "/", "", "/"),
        ("", "", "", "/"),
        (None, None, "", "/"),
        ("/app", "", "/app", "/app"),
        ("/app", "/x/y", "/app", "/app/x/y"),
        # C4: latin-1 octets of UTF-8 text decode back to the text.
        ("", "/ä¸\xadæ\x96\x87", "", "/中文"),
        ("/\xc3\xa9", "/caf\xc3\xa9", "/é", "/é/café"),
        # C5: invalid UTF-8 is replaced, never raised.
        ("", "/\xff", "", "/\ufffd"),
        # A9/C4: an already decoded %2F stays a slash.
        ("", "/a/b", "", "/a/b"),
    ],
)
def test_scope_root_path_and_path(
    script_name: str | None, path_info: str | None, root_path: str, path: str
) -> None:
    scope = scope_from_environ(make_environ(SCRIPT_NAME=script_name, PATH_INFO=path_info))
    assert scope["root_path"] == root_path
    assert scope["path"] == path


@pytest.mark.parametrize(
    ("overrides", "raw_path"),
    [
        ({"RAW_URI": "/a%2Fb?x=1"}, b"/a%2Fb"),
        ({"REQUEST_URI": "/caf%C3%A9"}, b"/caf%C3%A9"),
        ({"RAW_URI": "/first", "REQUEST_URI": "/second"}, b"/first"),
        ({"RAW_URI": "http://example.org/abs?q"}, b"/abs"),
        ({"RAW_URI": "http://example.org"}, b"/"),
        ({"RAW_URI": "*"}, None),
        ({}, None),
    ],
)
def test_scope_raw_path(overrides: dict[str, Any], raw_path: bytes | None) -> None:
    # C6: from RAW_URI/REQUEST_URI without the query; omitted otherwise.
    scope = scope_from_environ(make_environ(**overrides))
    assert scope.get("raw_path") == raw_path
    if raw_path is None:
        assert "raw_path" not in scope


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", b""),
        (None, b""),
        ("a=1&b=%20", b"a=1&b=%20"),
        ("x=\xe9", b"x=\xe9"),  # C7: latin-1, never ascii
    ],
)
def test_scope_query_string(query: str | None, expected: bytes) -> None:
    assert scope_from_environ(make_environ(QUERY_STRING=query))["query_string"] == expected


def test_scope_headers() -> None:
    # C8
    environ = make_environ(
        HTTP_HOST="example.org",
        HTTP_X_FORWARDED_FOR="1.2.3.4",
        HTTP_ACCEPT="text/\xe9",
        HTTP_CONTENT_TYPE="wrong/duplicate",
        HTTP_CONTENT_LENGTH="999",
        HTTP_CONTENT_ENCODING="gzip",
        CONTENT_TYPE="application/json",
        CONTENT_LENGTH="12",
    )
    headers = scope_from_environ(environ)["headers"]
    assert all(type(h) is list and len(h) == 2 for h in headers)
    assert all(type(n) is bytes and type(v) is bytes for n, v in headers)
    assert sorted(map(tuple, headers)) == sorted(
        [
            (b"host", b"example.org"),
            (b"x-forwarded-for", b"1.2.3.4"),
            (b"accept", b"text/\xe9"),
            (b"content-encoding", b"gzip"),
            (b"content-type", b"application/json"),
            (b"content-length", b"12"),
        ]
    )


def test_scope_header_names_cache_is_bounded() -> None:
    # C8: names are cached per environ key; a client sending ever new header
    # names must not grow the cache without bound, and later keys still convert.
    for number in range(scope_module._HEADER_NAMES_MAX + 10):
        environ = make_environ(**{f"HTTP_X_N{number}": "v"})
        assert [f"x-n{number}".encode(), b"v"] in scope_from_environ(environ)["headers"]
    assert len(scope_module._HEADER_NAMES) <= scope_module._HEADER_NAMES_MAX


def test_scope_headers_empty_content_variables_are_omitted() -> None:
    # C8: only non-empty CONTENT_TYPE/CONTENT_LENGTH.
    headers = scope_from_environ(make_environ(CONTENT_TYPE="", CONTENT_LENGTH=""))["headers"]
    assert headers == []


@pytest.mark.parametrize(
    ("overrides", "client"),
    [
        ({"REMOTE_ADDR": "10.0.0.1", "REMOTE_PORT": "5555"}, ["10.0.0.1", 5555]),
        ({"REMOTE_ADDR": "10.0.0.1"}, ["10.0.0.1", 0]),
        ({"REMOTE_ADDR": "10.0.0.1", "REMOTE_PORT": "junk"}, ["10.0.0.1", 0]),
        ({"REMOTE_ADDR": "::1", "REMOTE_PORT": "99999"}, ["::1", 0]),
        ({}, None),
        ({"REMOTE_ADDR": ""}, None),
    ],
)
def test_scope_client(overrides: dict[str, Any], client: list[Any] | None) -> None:
    # C9: the port is always an int.
    assert scope_from_environ(make_environ(**overrides))["client"] == client


@pytest.mark.parametrize(
    ("overrides", "server"),
    [
        ({}, ["example.org", 8080]),
        ({"SERVER_PORT": "0"}, ["example.org", 0]),
        ({"SERVER_PORT": "x"}, None),
        ({"SERVER_NAME": None}, None),
    ],
)
def test_scope_server(overrides: dict[str, Any], server: list[Any] | None) -> None:
    # C9
    assert scope_from_environ(make_environ(**overrides))["server"] == server


def test_scope_state_is_a_shallow_copy() -> None:
    # C10
    shared = object()
    state = {"pool": shared}
    first = scope_from_environ(make_environ(), state=state)
    second = scope_from_environ(make_environ(), state=state)
    first["state"]["new"] = 1
    assert "new" not in state
    assert "new" not in second["state"]
    assert first["state"]["pool"] is shared is second["state"]["pool"]


def test_scope_state_omitted_without_lifespan() -> None:
    # C10: "Omit it when there is no lifespan."
    assert "state" not in scope_from_environ(make_environ())


def test_scope_extensions() -> None:
    # C11: only what is implemented; never trailers, early hints, push or debug.
    scope = scope_from_environ(make_environ(**{"wsgi.url_scheme": "https"}))
    assert scope["extensions"] == {"http.response.pathsend": {}}
    assert scope["extensions"] == DEFAULT_EXTENSIONS
    assert scope_from_environ(make_environ(), extensions={})["extensions"] == {}


@pytest.mark.parametrize(
    "extension",
    [
        "http.response.early_hint",
        "http.response.push",
        "http.response.debug",
        "http.response.trailers",
    ],
)
def test_scope_never_offers_what_wsgi_cannot_carry(extension: str) -> None:
    # D11, D14, D15: no 103, no push, no debug, no trailers through a WSGI server.
    assert extension not in scope_from_environ(make_environ())["extensions"]


def test_scope_is_fresh_per_request() -> None:
    # C12: nothing mutable is shared between two scopes.
    first = scope_from_environ(make_environ(HTTP_HOST="h"))
    second = scope_from_environ(make_environ(HTTP_HOST="h"))
    assert first == second
    for key in ("asgi", "headers", "extensions"):
        assert first[key] is not second[key]
    assert (
        first["extensions"]["http.response.pathsend"]
        is not (second["extensions"]["http.response.pathsend"])
    )


_ALLOWED = (str, bytes, int, float, bool, type(None), list, tuple, dict)


def _check_types(value: object) -> None:
    assert isinstance(value, _ALLOWED), type(value)
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str
            _check_types(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_types(item)


def test_scope_holds_only_asgi_types() -> None:
    # C12 / ASGI §Events: only ASGI-allowed types and str keys.
    environ = make_environ(
        HTTP_HOST="h", REMOTE_ADDR="1.1.1.1", REMOTE_PORT="1", RAW_URI="/", CONTENT_TYPE="a/b"
    )
    _check_types(scope_from_environ(environ, state={"a": 1}))


def test_scope_non_latin1_environ_is_a_server_error() -> None:
    with pytest.raises(ServerProtocolError, match="latin-1"):
        scope_from_environ(make_environ(HTTP_X_BAD="中"))
    with pytest.raises(ServerProtocolError):
        scope_from_environ(make_environ(QUERY_STRING="中"))


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20))
def test_scope_path_round_trips_utf8(segment: str) -> None:
    # C4 inverted by A7: path -> PATH_INFO -> path is the identity for valid UTF-8.
    path_info = "/" + segment
    latin = path_info.encode("utf-8").decode("latin-1")
    assert scope_from_environ(make_environ(PATH_INFO=latin))["path"] == path_info
