"""SPEC B3–B9, B14, B16, B18: the start_response state machine."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from bridge.errors import AppProtocolError
from bridge.types import ExcInfo
from bridge.wsgi_response import ResponseState, check_body_chunk, is_bodiless


class Recorder(ResponseState):
    __slots__ = ("written",)

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


def exc_info_of(exc: BaseException) -> ExcInfo:
    try:
        raise exc
    except BaseException:
        return sys.exc_info()


def test_start_response_returns_write() -> None:  # B2
    state = Recorder()
    write = state("200 OK", [])
    write(b"x")
    assert state.written == [b"x"]


def test_start_message_keeps_order_lowercases_and_encodes() -> None:  # B8
    state = Recorder()
    state(
        "201 Created",
        [("X-B", "2"), ("Content-Type", "text/plain"), ("x-a", "caf\xe9"), ("X-B", "3")],
    )
    assert state.start_message() == {
        "type": "http.response.start",
        "status": 201,
        "headers": [
            (b"x-b", b"2"),
            (b"content-type", b"text/plain"),
            (b"x-a", b"caf\xe9"),
            (b"x-b", b"3"),
        ],
    }


@pytest.mark.parametrize(
    "status",
    [
        "200",
        "200  OK",
        " 200 OK",
        "20 OK",
        "2000 OK",
        "200 OK\r\n",
        "200\tOK",
        b"200 OK",
        200,
        "abc OK",
    ],
)
def test_invalid_status_raises(status: Any) -> None:  # B3
    with pytest.raises(AppProtocolError):
        Recorder()(status, [])


@pytest.mark.parametrize("status", ["200 OK", "404 Not Found", "599 ", "299 Custom reason here"])
def test_valid_status(status: str) -> None:  # B3, B8
    state = Recorder()
    state(status, [])
    assert state.status == int(status[:3])


@pytest.mark.parametrize(
    "headers",
    [
        ("X", "y"),  # not a list
        [("X", "y", "z")],
        [["X", "y"]],  # list, not tuple
        [(b"X", "y")],
        [("X", b"y")],
        [("Bad Name", "y")],
        [("X:", "y")],
        [("", "y")],
        [("X", "a\r\nSet-Cookie: evil")],
        [("X", "a\x00b")],
        [("X", "snowman \u2603")],  # not latin-1
        [("X-\u2603", "y")],
        [("Content-Length", "abc")],
        [("Content-Length", "-1")],
        [("Content-Length", "1"), ("Content-Length", "2")],
    ],
)
def test_invalid_headers_raise(headers: Any) -> None:  # B3
    with pytest.raises(AppProtocolError):
        Recorder()("200 OK", headers)


def test_tab_in_value_is_allowed() -> None:  # RFC 9110 §5.5
    state = Recorder()
    state("200 OK", [("X", "a\tb")])
    assert state.headers == [(b"x", b"a\tb")]


@pytest.mark.parametrize(
    "name",
    [
        "Connection",
        "keep-alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailers",
        "Transfer-Encoding",
        "Upgrade",
    ],
)
def test_hop_by_hop_headers_raise(name: str) -> None:  # B9
    with pytest.raises(AppProtocolError, match="hop-by-hop"):
        Recorder()("200 OK", [(name, "x")])


def test_second_call_without_exc_info_raises() -> None:  # B4
    state = Recorder()
    state("200 OK", [])
    with pytest.raises(AppProtocolError, match="second time"):
        state("200 OK", [])


def test_second_call_raises_even_if_the_first_raised() -> None:  # B4
    state = Recorder()
    with pytest.raises(AppProtocolError):
        state("bad", [])
    with pytest.raises(AppProtocolError, match="second time"):
        state("200 OK", [])
    assert state.status == 0


def test_exc_info_before_headers_sent_replaces_everything() -> None:  # B5
    state = Recorder()
    state("200 OK", [("Content-Length", "10"), ("X-A", "1")])
    state("500 Internal Server Error", [("Content-Length", "3")], exc_info_of(ValueError("x")))
    assert state.status == 500
    assert state.headers == [(b"content-length", b"3")]
    assert state.content_length == 3


def test_exc_info_replacement_after_a_failed_first_call() -> None:  # B4, B5
    state = Recorder()
    with pytest.raises(AppProtocolError):
        state("200 OK", [("Bad Name", "x")])
    state("500 Oops", [], exc_info_of(ValueError("x")))
    assert state.status == 500


def test_exc_info_after_headers_sent_reraises_the_original() -> None:  # B6
    state = Recorder()
    state("200 OK", [])
    state.headers_sent = True
    original = KeyError("boom")
    info = exc_info_of(original)
    with pytest.raises(KeyError) as raised:
        state("500 Oops", [], info)
    assert raised.value is original
    assert raised.value.__traceback__ is not None
    assert state.status == 200


def test_exc_info_of_nones_counts_as_no_exc_info() -> None:  # B4
    state = Recorder()
    state("200 OK", [])
    with pytest.raises(AppProtocolError):
        state("200 OK", [], (None, None, None))


def test_content_length_zero_allows_early_start() -> None:  # B7
    state = Recorder()
    state("200 OK", [("Content-Length", "0")])
    assert state.empty_body_allows_start()
    other = Recorder()
    other("200 OK", [("Content-Length", "1")])
    assert not other.empty_body_allows_start()


def test_clip_truncates_at_declared_length() -> None:  # B14
    state = Recorder()
    state("200 OK", [("Content-Length", "5")])
    assert state.clip(b"abc", "GET") == b"abc"
    assert not state.body_complete("GET")
    assert state.clip(b"defg", "GET") == b"de"
    assert state.body_complete("GET")
    assert state.clip(b"h", "GET") == b""
    assert state.short_by("GET") == 0


def test_short_body_is_detected() -> None:  # B14
    state = Recorder()
    state("200 OK", [("Content-Length", "5")])
    state.clip(b"ab", "GET")
    assert state.short_by("GET") == 3


@pytest.mark.parametrize(
    ("status", "method"),
    [("200 OK", "HEAD"), ("204 No Content", "GET"), ("304 Not Modified", "GET")],
)
def test_bodiless_responses_pass_through(status: str, method: str) -> None:  # B18
    state = Recorder()
    state(status, [("Content-Length", "100")])
    assert state.clip(b"xyz", method) == b"xyz"
    assert state.short_by(method) == 0
    assert not state.body_complete(method)
    assert not state.add_content_length(3, method)
    assert state.headers == [(b"content-length", b"100")]


def test_is_bodiless() -> None:  # B18
    assert is_bodiless(200, "HEAD")
    assert is_bodiless(101, "GET")
    assert is_bodiless(204, "GET")
    assert is_bodiless(304, "GET")
    assert not is_bodiless(200, "GET")
    assert not is_bodiless(404, "POST")


def test_add_content_length() -> None:  # B16
    state = Recorder()
    state("200 OK", [("Content-Type", "text/plain")])
    assert state.add_content_length(11, "GET")
    assert state.headers[-1] == (b"content-length", b"11")
    assert state.content_length == 11
    assert not state.add_content_length(12, "GET")  # already declared


def test_check_body_chunk() -> None:
    assert check_body_chunk(b"x") == b"x"

    class Sub(bytes):
        pass

    converted = check_body_chunk(Sub(b"y"))
    assert type(converted) is bytes
    assert converted == b"y"
    with pytest.raises(AppProtocolError):
        check_body_chunk(bytearray(b"y"))  # PEP 3333: bytes only
    with pytest.raises(AppProtocolError):
        check_body_chunk("text")
    with pytest.raises(AppProtocolError):
        check_body_chunk(None)


def test_base_write_is_abstract() -> None:
    state = ResponseState()
    write = state("200 OK", [])
    with pytest.raises(NotImplementedError):
        write(b"x")


def test_header_value_padding_is_stripped() -> None:
    # RFC 9110 §5.5: Django's Set-Cookie arrives as " csrftoken=x" (Cookie.output(header="")).
    state = ResponseState()
    state("200 OK", [("Set-Cookie", " csrftoken=x\t")])
    assert state.headers == [(b"set-cookie", b"csrftoken=x")]


# -- the conversion caches: a repeat must be judged exactly like the first call ------


@pytest.mark.parametrize("status", ["200 OK", "200  OK", "404 Not Found", "20 OK"])
def test_a_cached_status_is_judged_like_a_fresh_one(status: str) -> None:  # B3
    outcomes: list[int | None] = []
    for _ in range(3):
        try:
            state = Recorder()
            state(status, [])
            outcomes.append(state.status)
        except AppProtocolError:
            outcomes.append(None)
    assert len(set(outcomes)) == 1


def test_cached_header_pairs_convert_the_same_every_time() -> None:  # B3, B8
    headers = [("Content-Type", "text/plain"), ("Content-Length", "5"), ("X-A", " padded ")]
    results = []
    for _ in range(3):
        state = Recorder()
        state("200 OK", list(headers))
        results.append((state.headers, state.content_length))
    assert results[0] == results[1] == results[2]
    assert results[0] == (
        [(b"content-type", b"text/plain"), (b"content-length", b"5"), (b"x-a", b"padded")],
        5,
    )


def test_conflicting_cached_content_lengths_still_raise() -> None:  # B3
    for length in ("1", "2"):
        Recorder()("200 OK", [("Content-Length", length)])  # both pairs now cached
    with pytest.raises(AppProtocolError, match="conflicting"):
        Recorder()("200 OK", [("Content-Length", "1"), ("Content-Length", "2")])


def test_a_cached_pair_is_not_a_pass_for_other_types() -> None:  # B3
    Recorder()("200 OK", [("X-Kind", "1")])
    with pytest.raises(AppProtocolError):
        Recorder()("200 OK", [["X-Kind", "1"]])  # type: ignore[list-item]  # a list, not a tuple


def test_cookies_and_long_values_are_never_cached() -> None:
    # The cache must not hold per-client data such as session tokens.
    from bridge import wsgi_response

    cookie = ("Set-Cookie", "session=secret-token")
    long_value = ("X-Long", "v" * 200)
    Recorder()("200 OK", [cookie, long_value])
    assert cookie not in wsgi_response._PAIR_CACHE
    assert long_value not in wsgi_response._PAIR_CACHE
