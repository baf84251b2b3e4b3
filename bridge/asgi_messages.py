"""Validation and conversion of the messages an ASGI app sends (SPEC D4-D6, D11, D12).

Rules:
1. Pure: no threads, loops or I/O. :class:`ResponseCycle` is a small state
   machine in the style of h11: it is fed each message the application passes
   to ``send()``, checks it, and returns the event the WSGI side acts on.
2. Anything malformed or out of order raises :class:`~bridge.AppProtocolError`
   from ``send()`` (ASGI www §Error Handling: "servers must raise an exception
   if the message is invalid"); extra keys are tolerated (D6).
3. Order (D4, D5, D11, D12)::

       start ──> body* ──(more_body=False)──> [trailers* ──(more_trailers=False)──>] done
         └─────> pathsend ───────────────────> [trailers* ...] ───────────────────> done

Choices where the specs are silent (documented in the README):
- A message after the response completed raises ``AppProtocolError`` (D6:
  uvicorn raises, ASGI www says "ignored"); raising surfaces the bug.
- Hop-by-hop response headers are stripped silently (D4, PEP 3333 §Other HTTP
  Features), since WSGI servers manage the connection themselves.
- Trailers are accepted, checked and discarded (D11): WSGI cannot send them and
  the extension is never advertised.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from bridge.errors import AppProtocolError
from bridge.http import HOP_BY_HOP, check_field_name, check_field_value, reason_phrase

__all__ = [
    "BODY",
    "PATHSEND",
    "START",
    "TRAILERS",
    "ResponseCycle",
    "ResponseStart",
    "body_from_message",
    "pathsend_from_message",
    "start_from_message",
    "trailers_from_message",
]

# Event kinds returned by ResponseCycle.feed; small ints compare fastest.
START = 0
BODY = 1
PATHSEND = 2
TRAILERS = 3

# Phases of ResponseCycle.
_EXPECT_START = 0
_EXPECT_BODY = 1
_EXPECT_TRAILERS = 2
_COMPLETE = 3

_STATUS_LINES: dict[int, str] = {}


class ResponseStart(NamedTuple):
    """A checked ``http.response.start``, ready for ``start_response``."""

    status: int
    """The integer status code."""
    status_line: str
    """The PEP 3333 status string, ``"200 OK"``."""
    headers: list[tuple[str, str]]
    """Latin-1 ``(name, value)`` tuples, hop-by-hop headers removed."""
    trailers: bool
    """Whether ``http.response.trailers`` messages will follow the body (D11)."""


def _status_line(status: int) -> str:
    line = _STATUS_LINES.get(status)
    if line is None:
        # D4: f"{status} {phrase or 'Unknown'}"
        line = _STATUS_LINES[status] = f"{status} {reason_phrase(status)}"
    return line


# Checked ``(name, value)`` byte pairs of response start -> the latin-1 ``str``
# pair for start_response, or None for a hop-by-hop header (dropped). Apps send
# the same headers over and over; the cache is cleared when it fills up, since
# values such as Content-Length or ETag vary and must not grow it forever.
_START_HEADER_CACHE_MAX = 1024
_START_HEADER_CACHE: dict[tuple[bytes, bytes], tuple[str, str] | None] = {}


def _header(pair: Any, what: str, *, strip_hop_by_hop: bool) -> tuple[str, str] | None:
    """Check one ASGI header pair; return it as latin-1 ``str``, or None if it is dropped."""
    try:
        name_b, value_b = pair
    except (TypeError, ValueError):
        raise AppProtocolError(f"{what} header {pair!r} is not a [name, value] pair") from None
    if not (isinstance(name_b, (bytes, bytearray)) and isinstance(value_b, (bytes, bytearray))):
        raise AppProtocolError(
            f"{what} header {pair!r}: names and values must be bytes, not "
            f"{type(name_b).__name__}/{type(value_b).__name__}"
        )
    name = bytes(name_b).decode("latin-1")
    value = bytes(value_b).decode("latin-1")
    if name.startswith(":"):
        # ASGI www §Response Start: pseudo-headers are never allowed.
        raise AppProtocolError(f"{what} header {name!r} is a pseudo-header")
    check_field_name(name, AppProtocolError)
    check_field_value(name, value, AppProtocolError)
    if strip_hop_by_hop and name.lower() in HOP_BY_HOP:
        # D4 / PEP 3333 §Other HTTP Features: wsgiref.handlers asserts on these.
        return None
    return name, value


def _headers(raw: object, what: str, *, strip_hop_by_hop: bool) -> list[tuple[str, str]]:
    """Check ASGI ``[[bytes, bytes], ...]`` headers; return latin-1 ``str`` tuples."""
    if isinstance(raw, (str, bytes)) or not hasattr(raw, "__iter__"):
        raise AppProtocolError(f"{what} headers must be an iterable of [name, value] pairs")
    headers: list[tuple[str, str]] = []
    if not strip_hop_by_hop:  # trailers: checked and discarded, never cached
        for pair in raw:
            header = _header(pair, what, strip_hop_by_hop=False)
            if header is not None:
                headers.append(header)
        return headers
    cache = _START_HEADER_CACHE
    for pair in raw:
        try:
            header = cache[pair]
        except (KeyError, TypeError):  # not seen yet, or not hashable (a list pair)
            header = _header(pair, what, strip_hop_by_hop=True)
            if type(pair) is tuple and type(pair[0]) is bytes and type(pair[1]) is bytes:
                if len(cache) >= _START_HEADER_CACHE_MAX:
                    cache.clear()
                cache[pair] = header
        if header is not None:
            headers.append(header)
    return headers


def _flag(message: Mapping[str, Any], key: str) -> bool:
    value = message.get(key, False)
    if type(value) is not bool:
        raise AppProtocolError(
            f"{message.get('type')} {key!r} must be a bool, got {type(value).__name__}"
        )
    return value


def start_from_message(message: Mapping[str, Any]) -> ResponseStart:
    """Check an ``http.response.start`` message (D4) and convert it for WSGI.

    :param message: the message, whose ``type`` is ``http.response.start``.
    :raises AppProtocolError: if ``status`` is missing or not an int in
        100-999, or a header is not a pair of bytes, is a pseudo-header, or has
        an invalid name or value.
    """
    status = message.get("status")
    if type(status) is not int or not 100 <= status <= 999:
        raise AppProtocolError(
            f"http.response.start 'status' must be an int in 100-999, got {status!r}"
        )
    headers = _headers(message.get("headers", ()), "http.response.start", strip_hop_by_hop=True)
    return ResponseStart(status, _status_line(status), headers, _flag(message, "trailers"))


def body_from_message(message: Mapping[str, Any]) -> tuple[bytes, bool]:
    """Return ``(body, more_body)`` of an ``http.response.body`` message (D5).

    :raises AppProtocolError: if ``body`` is not bytes or ``more_body`` not a bool.
    """
    body = message.get("body", b"")
    if type(body) is not bytes:
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise AppProtocolError(
                f"http.response.body 'body' must be bytes, got {type(body).__name__}"
            )
        body = bytes(body)
    return body, _flag(message, "more_body")


def pathsend_from_message(message: Mapping[str, Any]) -> str:
    """Return the ``path`` of an ``http.response.pathsend`` message (D12).

    :raises AppProtocolError: if ``path`` is missing, not a ``str`` or not absolute.
    """
    path = message.get("path")
    if not isinstance(path, str) or not os.path.isabs(path):
        raise AppProtocolError(
            f"http.response.pathsend 'path' must be an absolute str path, got {path!r}"
        )
    return path


def trailers_from_message(message: Mapping[str, Any]) -> bool:
    """Check an ``http.response.trailers`` message (D11); return ``more_trailers``.

    :raises AppProtocolError: if the headers or ``more_trailers`` are malformed.
    """
    _headers(message.get("headers", ()), "http.response.trailers", strip_hop_by_hop=False)
    return _flag(message, "more_trailers")


class ResponseCycle:
    """The order of one response's messages (D4-D6, D11, D12).

    :meth:`feed` returns ``(kind, payload, done)``: ``kind`` is :data:`START`
    (payload a :class:`ResponseStart`), :data:`BODY` (payload ``bytes``),
    :data:`PATHSEND` (payload the path) or :data:`TRAILERS` (payload ``None``);
    ``done`` is true once the response is complete.
    """

    __slots__ = ("_phase", "_sent_body", "_trailers")

    def __init__(self) -> None:
        self._phase = _EXPECT_START
        self._trailers = False
        self._sent_body = False

    @property
    def complete(self) -> bool:
        """Whether the final message of the response has been fed."""
        return self._phase == _COMPLETE

    @property
    def started(self) -> bool:
        """Whether ``http.response.start`` has been fed."""
        return self._phase != _EXPECT_START

    def feed(self, message: Mapping[str, Any]) -> tuple[int, Any, bool]:
        """Check ``message`` against the state of the response and advance it.

        :param message: what the application passed to ``send()``.
        :raises AppProtocolError: for a non-mapping, an unknown or missing
            ``type``, malformed fields, or a message out of order.
        """
        try:
            kind = message["type"]
        except (TypeError, KeyError):
            raise AppProtocolError(f"ASGI message {message!r} has no 'type'") from None
        except Exception as exc:  # a mapping whose __getitem__ is broken
            raise AppProtocolError(f"ASGI message {message!r} is not a mapping") from exc
        phase = self._phase
        if kind == "http.response.body":
            if phase != _EXPECT_BODY:
                raise self._out_of_order(kind)
            body, more = body_from_message(message)
            if body:
                self._sent_body = True
            if not more:
                self._phase = _EXPECT_TRAILERS if self._trailers else _COMPLETE
            return BODY, body, self._phase == _COMPLETE
        if kind == "http.response.start":
            if phase != _EXPECT_START:
                raise self._out_of_order(kind)
            start = start_from_message(message)
            self._trailers = start.trailers
            self._phase = _EXPECT_BODY
            return START, start, False
        if kind == "http.response.pathsend":
            # EXT §Path Send: after start, once, never mixed with body, final.
            if phase != _EXPECT_BODY or self._sent_body:
                raise self._out_of_order(kind)
            path = pathsend_from_message(message)
            self._phase = _EXPECT_TRAILERS if self._trailers else _COMPLETE
            return PATHSEND, path, self._phase == _COMPLETE
        if kind == "http.response.trailers":
            if phase != _EXPECT_TRAILERS:
                raise self._out_of_order(kind)
            if not trailers_from_message(message):
                self._phase = _COMPLETE
            return TRAILERS, None, self._phase == _COMPLETE
        raise AppProtocolError(f"unexpected ASGI message type {kind!r} for an http response")

    def _out_of_order(self, kind: str) -> AppProtocolError:
        expected = {
            _EXPECT_START: "'http.response.start'",
            _EXPECT_BODY: "'http.response.body' or 'http.response.pathsend'",
            _EXPECT_TRAILERS: "'http.response.trailers'",
            _COMPLETE: "nothing: the response is complete",
        }[self._phase]
        if kind == "http.response.pathsend" and self._sent_body:
            expected = "'http.response.body': pathsend cannot follow body"
        return AppProtocolError(f"got {kind!r}, expected {expected}")
