"""SPEC section A: the WSGI environ built from an ASGI http scope."""

from __future__ import annotations

import io
import wsgiref.validate
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.environ import DUPLICATE_HEADER_LIMIT, environ_from_scope
from bridge.errors import ServerProtocolError
from bridge.types import Environ
from bridge.wsgi_io import ErrorStream, FileWrapper
from tests.scopes import http_scope


def build(**overrides: Any) -> Environ:
    return environ_from_scope(http_scope(**overrides), io.BytesIO(), ErrorStream())


def test_environ_is_exact_dict_with_latin1_str_values() -> None:  # A1, A2
    environ = build(path="/ünï", headers=[(b"x-a", b"\xff\xfe")])
    assert type(environ) is dict
    for key, value in environ.items():
        if "." not in key:
            assert type(value) is str, key
            assert all(ord(ch) <= 0xFF for ch in value), key


def test_environ_passes_wsgiref_validate_check_environ() -> None:  # A1-A24 per [VAL]
    environ = build(headers=[(b"content-type", b"text/plain"), (b"content-length", b"3")])
    check_environ = vars(wsgiref.validate)["check_environ"]  # not in typeshed
    check_environ(environ)


@pytest.mark.parametrize(
    ("root_path", "path", "script_name", "path_info"),
    [
        ("", "/", "", "/"),  # A4: "" when absent
        ("", "/a/b", "", "/a/b"),
        ("/app", "/app/x", "/app", "/x"),  # A5: strip the prefix
        ("/app", "/app", "/app", ""),
        ("/app/", "/app/x", "/app", "/x"),  # trailing slash of root_path dropped
        ("/", "/x", "", "/x"),  # A4: never "/"
        ("/app", "/application", "/app", "/application"),  # not a segment boundary
        ("/app", "/x", "/app", "/x"),  # legacy server: path without root_path
        ("", "/中文", "", "/ä¸\xadæ\x96\x87"),  # A7
        ("/中", "/中/文", "/ä¸\xad", "/æ\x96\x87"),  # A4: root_path as utf-8 octets too
        ("", "/a/b%2Fc", "", "/a/b%2Fc"),  # a literal %2F stays (it was %252F)
        ("", "/a/b/c", "", "/a/b/c"),  # A9: %2F already decoded by the server
    ],
)
def test_script_name_and_path_info(
    root_path: str, path: str, script_name: str, path_info: str
) -> None:  # A4, A5, A7, A9
    environ = build(root_path=root_path, path=path, raw_path=None)
    assert environ["SCRIPT_NAME"] == script_name
    assert environ["PATH_INFO"] == path_info


def test_root_path_missing_means_empty_script_name() -> None:  # A4
    scope = http_scope(path="/x")
    del scope["root_path"]
    environ = environ_from_scope(scope, io.BytesIO(), ErrorStream())
    assert environ["SCRIPT_NAME"] == ""
    assert environ["PATH_INFO"] == "/x"


@pytest.mark.parametrize(
    ("root_path", "path", "raw_path", "path_info"),
    [
        # A8: /%FF arrives as "/\ufffd"; raw_path restores the octet.
        ("", "/\ufffd", b"/%FF", "/\xff"),
        ("", "/a\ufffdb", b"/a%ffb?q=1", "/a\xffb"),
        # raw_path including root_path (uvicorn) ...
        ("/app", "/app/\ufffd", b"/app/%FF", "/\xff"),
        # ... or not.
        ("/app", "/app/\ufffd", b"/%FF", "/\xff"),
        # Fallbacks to path: missing, None, inconsistent (granian#531).
        ("", "/\ufffd", None, "/\xef\xbf\xbd"),
        ("", "/\ufffd", b"/other", "/\xef\xbf\xbd"),
        # A real U+FFFD sent as %EF%BF%BD stays three octets.
        ("", "/\ufffd", b"/%EF%BF%BD", "/\xef\xbf\xbd"),
    ],
)
def test_raw_path_recovers_non_utf8_octets(
    root_path: str, path: str, raw_path: bytes | None, path_info: str
) -> None:  # A8
    environ = build(root_path=root_path, path=path, raw_path=raw_path)
    assert environ["PATH_INFO"] == path_info


def test_raw_path_is_optional_and_can_be_disabled() -> None:  # A8
    scope = http_scope(path="/\ufffd", raw_path=b"/%FF")
    environ = environ_from_scope(scope, io.BytesIO(), ErrorStream(), use_raw_path=False)
    assert environ["PATH_INFO"] == "/\xef\xbf\xbd"
    del scope["raw_path"]
    environ = environ_from_scope(scope, io.BytesIO(), ErrorStream())
    assert environ["PATH_INFO"] == "/\xef\xbf\xbd"


def test_path_with_lone_surrogate_is_a_400() -> None:
    with pytest.raises(ServerProtocolError) as info:
        build(path="/\ud800")
    assert info.value.status_hint == 400


@pytest.mark.parametrize(
    ("query_string", "expected"),
    [
        (b"", ""),  # A10: set even when empty
        (b"a=1&b=%20", "a=1&b=%20"),  # not unquoted
        (b"x=\xff\xe9", "x=\xff\xe9"),  # 8-bit bytes: latin-1, never ascii
    ],
)
def test_query_string(query_string: bytes, expected: str) -> None:  # A10
    assert build(query_string=query_string)["QUERY_STRING"] == expected


def test_query_string_missing_from_scope() -> None:  # A10
    scope = http_scope()
    del scope["query_string"]
    assert environ_from_scope(scope, io.BytesIO(), ErrorStream())["QUERY_STRING"] == ""


def test_request_method() -> None:  # A3
    assert build(method="PATCH")["REQUEST_METHOD"] == "PATCH"


def test_content_type_and_length() -> None:  # A11
    environ = build(headers=[(b"content-type", b"application/json"), (b"content-length", b"0012")])
    assert environ["CONTENT_TYPE"] == "application/json"
    assert environ["CONTENT_LENGTH"] == "12"
    assert "HTTP_CONTENT_TYPE" not in environ
    assert "HTTP_CONTENT_LENGTH" not in environ
    environ = build(headers=[])
    assert "CONTENT_TYPE" not in environ
    assert "CONTENT_LENGTH" not in environ


@pytest.mark.parametrize(
    "values",
    [
        [b"5", b"6"],  # conflicting duplicates
        [b"-1"],
        [b"abc"],
        [b""],
        [b"\xb2"],  # "²": isdigit() but not a number
        [b"5, 6"],
        [b"1" * 40],
    ],
)
def test_invalid_or_conflicting_content_length_is_400(values: list[bytes]) -> None:  # A11
    headers = [(b"content-length", value) for value in values]
    with pytest.raises(ServerProtocolError) as info:
        build(headers=headers)
    assert info.value.status_hint == 400


@pytest.mark.parametrize("values", [[b"5", b"5"], [b"5, 5"], [b" 5 "]])
def test_identical_content_lengths_are_one(values: list[bytes]) -> None:  # A11, RFC 9112 §6.3
    headers = [(b"content-length", value) for value in values]
    assert build(headers=headers)["CONTENT_LENGTH"] == "5"


@pytest.mark.parametrize(
    ("name", "key"),
    [
        (b"host", "HTTP_HOST"),
        (b"x-forwarded-for", "HTTP_X_FORWARDED_FOR"),
        (b"accept", "HTTP_ACCEPT"),
        (b"X-Upper", "HTTP_X_UPPER"),
        (b"x-\xe9", "HTTP_X_\xe9"),  # only ASCII upper-cased: stays latin-1 (A2)
        (b"x-\xff", "HTTP_X_\xff"),
    ],
)
def test_header_keys(name: bytes, key: str) -> None:  # A12
    assert build(headers=[(name, b"v\xe9")])[key] == "v\xe9"


def test_duplicate_headers_join_with_comma_space() -> None:  # A13
    environ = build(
        headers=[(b"accept", b"a"), (b"x-y", b"1"), (b"accept", b"b"), (b"accept", b"c")]
    )
    assert environ["HTTP_ACCEPT"] == "a, b, c"
    assert environ["HTTP_X_Y"] == "1"


def test_duplicate_header_limit() -> None:  # A13 (CVE-2025-14550)
    ok = [(b"x-a", b"v")] * DUPLICATE_HEADER_LIMIT
    assert build(headers=ok)["HTTP_X_A"] == ", ".join(["v"] * DUPLICATE_HEADER_LIMIT)
    with pytest.raises(ServerProtocolError) as info:
        build(headers=[*ok, (b"x-a", b"v")])
    assert info.value.status_hint == 400
    scope = http_scope(headers=[(b"x-a", b"v")] * 3)
    with pytest.raises(ServerProtocolError):
        environ_from_scope(scope, io.BytesIO(), ErrorStream(), duplicate_header_limit=2)


def test_many_duplicates_are_joined_in_linear_time() -> None:  # A13
    environ = build(headers=[(b"x-a", b"v")] * 50 + [(b"x-b", b"w")] * 50)
    assert environ["HTTP_X_A"].count("v") == 50
    assert environ["HTTP_X_B"].count("w") == 50


def test_cookies_join_with_semicolon() -> None:  # A14
    environ = build(headers=[(b"cookie", b"a=1"), (b"cookie", b"b=2"), (b"accept", b"x")])
    assert environ["HTTP_COOKIE"] == "a=1; b=2"


@pytest.mark.parametrize("name", [b"x_forwarded_for", b"x-auth_user", b"_"])
def test_underscore_headers_are_dropped(name: bytes) -> None:  # A15
    environ = build(headers=[(name, b"spoof"), (b"x-auth-user", b"real")])
    assert environ["HTTP_X_AUTH_USER"] == "real"
    assert "spoof" not in environ.values()


def test_pseudo_headers_are_dropped_and_host_comes_from_host() -> None:  # A16
    environ = build(headers=[(b":authority", b"evil"), (b"host", b"good")])
    assert environ["HTTP_HOST"] == "good"
    assert "evil" not in environ.values()


@pytest.mark.parametrize(
    ("server", "headers", "scheme", "name", "port"),
    [
        (("127.0.0.1", 8000), [], "http", "127.0.0.1", "8000"),
        (["::1", 443], [], "https", "::1", "443"),
        (None, [(b"host", b"example.com:8080")], "http", "example.com", "8080"),
        (None, [(b"host", b"example.com")], "https", "example.com", "443"),
        (None, [(b"host", b"[::1]:9000")], "http", "[::1]", "9000"),
        (None, [(b"host", b"[::1]")], "http", "[::1]", "80"),
        (("/tmp/s.sock", None), [(b"host", b"h")], "http", "h", "80"),  # Unix socket
        (None, [], "http", "localhost", "80"),
        (None, [], "https", "localhost", "443"),
    ],
)
def test_server_name_and_port(
    server: Any, headers: list[tuple[bytes, bytes]], scheme: str, name: str, port: str
) -> None:  # A17
    environ = build(server=server, headers=headers, scheme=scheme)
    assert environ["SERVER_NAME"] == name
    assert environ["SERVER_PORT"] == port
    assert type(environ["SERVER_PORT"]) is str


def test_remote_addr_and_port() -> None:  # A18
    environ = build(client=("1.2.3.4", 40000))
    assert environ["REMOTE_ADDR"] == "1.2.3.4"
    assert environ["REMOTE_PORT"] == "40000"
    environ = build(client=None)
    assert "REMOTE_ADDR" not in environ
    assert "REMOTE_PORT" not in environ


@pytest.mark.parametrize(
    ("version", "protocol"), [("1.0", "HTTP/1.0"), ("1.1", "HTTP/1.1"), ("2", "HTTP/2")]
)
def test_server_protocol(version: str, protocol: str) -> None:  # A19
    assert build(http_version=version)["SERVER_PROTOCOL"] == protocol


def test_wsgi_keys() -> None:  # A20-A25, A27
    stream = io.BytesIO(b"x")
    errors = ErrorStream()
    scope = http_scope(scheme="https")
    environ = environ_from_scope(scope, stream, errors, file_wrapper=FileWrapper)
    assert environ["wsgi.version"] == (1, 0)
    assert type(environ["wsgi.version"]) is tuple
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["wsgi.input"] is stream
    assert environ["wsgi.errors"] is errors
    assert environ["wsgi.multithread"] is True
    assert environ["wsgi.multiprocess"] is True
    assert environ["wsgi.run_once"] is False
    assert environ["wsgi.input_terminated"] is True
    assert environ["wsgi.file_wrapper"] is FileWrapper
    assert environ["bridge.asgi_scope"] is scope
    for key in environ:
        if "." in key:
            assert key == key.lower()
            assert key.startswith(("wsgi.", "bridge."))
    scope = http_scope()
    del scope["scheme"]
    environ = environ_from_scope(scope, stream, errors, multiprocess=False)
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.multiprocess"] is False
    assert "wsgi.file_wrapper" not in environ


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=30))
def test_path_info_round_trips_to_the_asgi_path(segment: str) -> None:  # A7 (property)
    path = "/" + segment
    environ = build(path=path, raw_path=None)
    assert environ["PATH_INFO"].encode("latin-1").decode("utf-8") == path


@given(st.lists(st.tuples(st.sampled_from([b"x-a", b"x-b", b"cookie"]), st.binary(max_size=8))))
def test_every_header_value_survives_the_merge(headers: list[tuple[bytes, bytes]]) -> None:  # A13
    environ = build(headers=headers)
    for name, value in headers:
        key = "HTTP_" + name.decode().upper().replace("-", "_")
        assert value.decode("latin-1") in environ[key]
