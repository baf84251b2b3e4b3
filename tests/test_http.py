from __future__ import annotations

import pytest

from bridge.errors import AppProtocolError, ServerProtocolError
from bridge.http import (
    check_field_name,
    check_field_value,
    is_hop_by_hop,
    parse_wsgi_status,
    reason_phrase,
)


@pytest.mark.parametrize(
    ("status", "code"),
    [("200 OK", 200), ("404 Not Found", 404), ("599 ", 599), ("201 Créé", 201), ("100 x y", 100)],
)
def test_parse_wsgi_status_accepts(status: str, code: int) -> None:
    assert parse_wsgi_status(status, AppProtocolError) == code


@pytest.mark.parametrize(
    "status",
    [
        b"200 OK",
        200,
        "200",
        "200  OK",
        " 200 OK",
        "20 OK",
        "099 X",
        "200\tOK",
        "200 OK\r\n",
        "abc OK",
        "200 OK ",
        "200 \x00",
    ],
)
def test_parse_wsgi_status_rejects(status: object) -> None:
    with pytest.raises(AppProtocolError):
        parse_wsgi_status(status, AppProtocolError)


@pytest.mark.parametrize("name", ["Content-Type", "x_y", "X-!#$%&'*+.^`|~"])
def test_check_field_name_accepts_tokens(name: str) -> None:
    check_field_name(name, AppProtocolError)


@pytest.mark.parametrize("name", ["", "a b", "a:b", "a\r\nb", "é", "a\x00"])
def test_check_field_name_rejects(name: str) -> None:
    with pytest.raises(ServerProtocolError):
        check_field_name(name, ServerProtocolError)


@pytest.mark.parametrize("value", ["", "text/html", "a\tb", "caf\xe9"])
def test_check_field_value_accepts(value: str) -> None:
    check_field_value("x", value, AppProtocolError)


@pytest.mark.parametrize("value", ["a\rb", "a\nb", "a\x00", "\x7f", "a\r\nSet-Cookie: x=1"])
def test_check_field_value_rejects(value: str) -> None:
    with pytest.raises(AppProtocolError):
        check_field_value("x", value, AppProtocolError)


def test_hop_by_hop() -> None:
    assert is_hop_by_hop("Transfer-Encoding")
    assert is_hop_by_hop("connection")
    assert not is_hop_by_hop("Content-Length")


def test_reason_phrase() -> None:
    assert reason_phrase(200) == "OK"
    assert reason_phrase(418) == "I'm a Teapot"
    assert reason_phrase(599) == "Unknown"
