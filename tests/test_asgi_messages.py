"""bridge.asgi_messages: checking the messages an ASGI app sends (SPEC D4-D6, D11, D12)."""

from __future__ import annotations

from typing import Any

import pytest

from bridge import asgi_messages
from bridge.asgi_messages import (
    BODY,
    PATHSEND,
    START,
    TRAILERS,
    ResponseCycle,
    ResponseStart,
    body_from_message,
    pathsend_from_message,
    start_from_message,
    trailers_from_message,
)
from bridge.errors import AppProtocolError


def start(status: Any = 200, headers: Any = (), **extra: Any) -> dict[str, Any]:
    return {"type": "http.response.start", "status": status, "headers": headers, **extra}


def test_start_converts_for_wsgi() -> None:
    # D4
    result = start_from_message(
        start(201, [[b"content-type", b"text/plain"], (b"X-Cafe", b"\xe9t\xe9")])
    )
    assert result == ResponseStart(
        201, "201 Created", [("content-type", "text/plain"), ("X-Cafe", "\xe9t\xe9")], False
    )


def test_start_defaults() -> None:
    # D4: headers default to [], trailers to False; unknown codes say "Unknown".
    assert start_from_message({"type": "http.response.start", "status": 599}) == ResponseStart(
        599, "599 Unknown", [], False
    )


def test_start_strips_hop_by_hop_headers() -> None:
    # D4: wsgiref.handlers asserts on hop-by-hop headers.
    headers = [[b"Connection", b"close"], [b"transfer-encoding", b"chunked"], [b"x-a", b"1"]]
    assert start_from_message(start(200, headers)).headers == [("x-a", "1")]


def test_start_headers_cached_give_the_same_result() -> None:
    # D4: the second conversion of the same pairs comes from the cache: same
    # headers, hop-by-hop still dropped, list pairs (not cacheable) still work.
    headers = [(b"content-type", b"text/plain"), (b"connection", b"close"), [b"x-a", b"1"]]
    first = start_from_message(start(200, headers))
    second = start_from_message(start(200, headers))
    assert first.headers == second.headers == [("content-type", "text/plain"), ("x-a", "1")]
    assert first.headers is not second.headers


def test_start_header_cache_is_bounded() -> None:
    for number in range(asgi_messages._START_HEADER_CACHE_MAX + 10):
        start_from_message(start(200, [(b"content-length", b"%d" % number)]))
    assert len(asgi_messages._START_HEADER_CACHE) <= asgi_messages._START_HEADER_CACHE_MAX


@pytest.mark.parametrize("cached", [False, True])
@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-a", "text/plain")],
        [(b"x-a", b"a\r\nb")],
        [(b":status", b"200")],
        [(b"bad name", b"x")],
        [(b"x-a", b"1", b"2")],
    ],
)
def test_start_header_cache_never_admits_invalid(headers: Any, cached: bool) -> None:
    # An invalid pair raises every time: it never enters the cache.
    if cached:
        with pytest.raises(AppProtocolError):
            start_from_message(start(200, headers))
    with pytest.raises(AppProtocolError):
        start_from_message(start(200, headers))


@pytest.mark.parametrize(
    "message",
    [
        start("200"),
        start(200.0),
        start(True),
        start(99),
        start(1000),
        {"type": "http.response.start"},
        start(200, [["content-type", "text/plain"]]),  # str headers (D6)
        start(200, [[b"content-type", "text/plain"]]),
        start(200, [[b":status", b"200"]]),  # pseudo-header (D4)
        start(200, [[b"bad name", b"x"]]),
        start(200, [[b"x-caf\xe9", b"x"]]),
        start(200, [[b"x-a", b"a\r\nb"]]),
        start(200, [[b"x-a"]]),
        start(200, [b"x-a"]),
        start(200, "content-type: x"),
        start(200, 5),
        start(200, trailers="yes"),
    ],
)
def test_start_rejects_invalid(message: dict[str, Any]) -> None:
    with pytest.raises(AppProtocolError):
        start_from_message(message)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"type": "http.response.body"}, (b"", False)),
        ({"type": "http.response.body", "body": b"x", "more_body": True}, (b"x", True)),
        ({"type": "http.response.body", "body": bytearray(b"ab")}, (b"ab", False)),
        ({"type": "http.response.body", "body": memoryview(b"cd")}, (b"cd", False)),
        ({"type": "http.response.body", "body": b"x", "extra": 1}, (b"x", False)),
    ],
)
def test_body_defaults_and_conversion(
    message: dict[str, Any], expected: tuple[bytes, bool]
) -> None:
    # D5: body defaults to b"", more_body to False; extra keys are tolerated (D6).
    assert body_from_message(message) == expected


@pytest.mark.parametrize(
    "message",
    [
        {"type": "http.response.body", "body": "text"},
        {"type": "http.response.body", "body": None},
        {"type": "http.response.body", "more_body": 1},
    ],
)
def test_body_rejects_invalid(message: dict[str, Any]) -> None:
    with pytest.raises(AppProtocolError):
        body_from_message(message)


def test_pathsend_requires_an_absolute_path() -> None:
    # D12
    assert pathsend_from_message({"type": "http.response.pathsend", "path": "/a/b"}) == "/a/b"
    for path in ("relative/file", b"/bytes", None):
        with pytest.raises(AppProtocolError):
            pathsend_from_message({"type": "http.response.pathsend", "path": path})


def test_trailers_checked() -> None:
    # D11
    assert trailers_from_message({"type": "http.response.trailers"}) is False
    assert trailers_from_message(
        {"type": "http.response.trailers", "headers": [[b"x-sum", b"1"]], "more_trailers": True}
    )
    with pytest.raises(AppProtocolError):
        trailers_from_message({"type": "http.response.trailers", "headers": [["a", "b"]]})


def test_cycle_simple_response() -> None:
    cycle = ResponseCycle()
    started_before = cycle.started
    assert not started_before
    kind, payload, done = cycle.feed(start(200))
    assert (kind, done) == (START, False)
    assert isinstance(payload, ResponseStart)
    assert cycle.started
    assert cycle.feed({"type": "http.response.body", "body": b"a", "more_body": True}) == (
        BODY,
        b"a",
        False,
    )
    assert cycle.feed({"type": "http.response.body", "body": b"b"}) == (BODY, b"b", True)
    assert cycle.complete


def test_cycle_trailers_complete_the_response() -> None:
    # D11: trailers: True -> incomplete until http.response.trailers (more_trailers=False).
    cycle = ResponseCycle()
    cycle.feed(start(200, trailers=True))
    assert cycle.feed({"type": "http.response.body", "body": b"x"}) == (BODY, b"x", False)
    assert cycle.feed({"type": "http.response.trailers", "more_trailers": True}) == (
        TRAILERS,
        None,
        False,
    )
    assert cycle.feed({"type": "http.response.trailers"}) == (TRAILERS, None, True)
    assert cycle.complete


def test_cycle_pathsend_is_final() -> None:
    # D12
    cycle = ResponseCycle()
    cycle.feed(start(200))
    cycle.feed({"type": "http.response.body", "body": b"", "more_body": True})
    assert cycle.feed({"type": "http.response.pathsend", "path": "/f"}) == (PATHSEND, "/f", True)
    with pytest.raises(AppProtocolError, match="complete"):
        cycle.feed({"type": "http.response.body"})


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([{"type": "http.response.body"}], "expected 'http.response.start'"),  # D5
        ([start(), start()], "expected 'http.response.body'"),  # D4: once
        ([start(), {"type": "http.response.body"}, {"type": "http.response.body"}], "complete"),
        ([start(), {"type": "http.response.trailers"}], "trailers"),
        (
            [
                start(),
                {"type": "http.response.body", "body": b"x", "more_body": True},
                {"type": "http.response.pathsend", "path": "/f"},
            ],
            "pathsend cannot follow body",
        ),
        ([{"type": "http.response.pathsend", "path": "/f"}], "expected 'http.response.start'"),
        ([{"type": "websocket.send"}], "unexpected ASGI message type"),
        ([{"body": b""}], "no 'type'"),
        ([None], "no 'type'"),
    ],
)
def test_cycle_rejects_bad_order(messages: list[Any], match: str) -> None:
    # D6: invalid messages raise; a message after completion raises (our choice).
    cycle = ResponseCycle()
    for message in messages[:-1]:
        cycle.feed(message)
    with pytest.raises(AppProtocolError, match=match):
        cycle.feed(messages[-1])
