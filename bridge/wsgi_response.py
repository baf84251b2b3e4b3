"""The ``start_response`` state machine of a WSGI response (W→A, SPEC B3–B9, B14, B16).

Rules:
1. Pure: no threads, no loops, no I/O. The adapter subclasses
   :class:`ResponseState` and supplies ``write``; everything that decides
   *what* to send lives here, the adapter only decides *when*.
2. ``start_response`` validates and raises there (B3), so the application
   sees the error at the line that caused it.
3. Nothing is converted twice: the ASGI header list is built once, when
   ``start_response`` is called, and handed to the server as is.
"""

from __future__ import annotations

from typing import Any

from bridge.errors import AppProtocolError
from bridge.http import HOP_BY_HOP, check_field_name, check_field_value, parse_wsgi_status
from bridge.types import ExcInfo, Message, Write

__all__ = ["ResponseState", "check_body_chunk", "is_bodiless"]

# Validated header name -> (lower-case latin-1 bytes, is Content-Length).
# Bounded like the environ cache: names come from the app, but an app echoing
# client input must not make it grow without bound.
_NAME_CACHE_MAX = 1024
_NAME_CACHE: dict[str, tuple[bytes, bool]] = {}

# Validated status line -> its code. Apps use a handful of status strings;
# the bound keeps one that invents reason phrases from growing it.
_STATUS_CACHE_MAX = 256
_STATUS_CACHE: dict[str, int] = {}

# A whole validated (name, value) pair -> its ASGI form and its Content-Length
# (None unless it is one). Most responses repeat the same few pairs
# (Content-Type, a small Content-Length, Cache-Control); validating and
# encoding them again is most of start_response's cost. Only short values of
# fields other than Set-Cookie are kept, so the cache never holds session
# tokens or other per-client data, and it stops growing at its bound.
_PAIR_CACHE_MAX = 1024
_PAIR_VALUE_MAX = 64
_PAIR_CACHE: dict[tuple[str, str], tuple[tuple[bytes, bytes], int | None]] = {}


def is_bodiless(status: int, method: str) -> bool:
    """Whether the response must not carry a body: HEAD, 1xx, 204, 304 (RFC 9110 §6.4.1).

    For these, B18: headers pass through unchanged, ``Content-Length`` is
    never computed or enforced, and the server drops any body.
    """
    return method == "HEAD" or status < 200 or status == 204 or status == 304


def _header_name(name: str) -> tuple[bytes, bool]:
    cached = _NAME_CACHE.get(name)
    if cached is not None:
        return cached
    # B3 (PEP 3333 §start_response; RFC 9110 §5.1): names are tokens.
    check_field_name(name, AppProtocolError)
    lowered = name.lower()
    # B9 (PEP 3333 §Other HTTP Features): hop-by-hop headers are "a fatal error".
    if lowered in HOP_BY_HOP:
        raise AppProtocolError(
            f"hop-by-hop header {name!r} is forbidden in a WSGI response (PEP 3333)"
        )
    entry = (lowered.encode("ascii"), lowered == "content-length")
    if len(_NAME_CACHE) < _NAME_CACHE_MAX:
        _NAME_CACHE[name] = entry
    return entry


def _convert_pair(name: str, value: str) -> tuple[tuple[bytes, bytes], int | None]:
    """One validated header in ASGI form, and its Content-Length (None unless it is one)."""
    key, is_length = _header_name(name)
    # B3: values carry no CR, LF or other control characters.
    check_field_value(name, value, AppProtocolError)
    try:
        # RFC 9110 §5.5: leading and trailing whitespace is not part of a
        # field value. Django sends Set-Cookie as " name=value"; h11 and
        # other strict servers reject the padded value.
        encoded = value.strip(" \t").encode("latin-1")
    except UnicodeEncodeError as exc:
        # PEP 3333 §Unicode Issues: header values are latin-1 only.
        raise AppProtocolError(f"header {name!r} value {value!r} is not latin-1") from exc
    length = None
    if is_length:
        stripped = value.strip()
        if not (stripped.isascii() and stripped.isdigit()):
            raise AppProtocolError(f"invalid Content-Length {value!r}")
        length = int(stripped)
    # B8 (ASGI www §WSGI Compatibility): lower-case latin-1 names.
    return (key, encoded), length


def _convert_headers(headers: object) -> tuple[list[tuple[bytes, bytes]], int | None]:
    """ASGI headers and the declared Content-Length from WSGI ``response_headers``."""
    # PEP 3333 §start_response: "response_headers argument is a list of
    # (header_name, header_value) tuples. It must be a Python list".
    if type(headers) is not list:
        raise AppProtocolError(f"response headers must be a list, got {type(headers).__name__}")
    converted: list[tuple[bytes, bytes]] = []
    content_length: int | None = None
    cache = _PAIR_CACHE
    for item in headers:
        if type(item) is not tuple or len(item) != 2:
            raise AppProtocolError(f"each response header must be a (name, value) tuple: {item!r}")
        name, value = item
        if type(name) is not str or type(value) is not str:
            raise AppProtocolError(f"header name and value must be str: {item!r}")
        entry = cache.get(item)
        if entry is None:
            entry = _convert_pair(name, value)
            cacheable = len(value) <= _PAIR_VALUE_MAX and entry[0][0] != b"set-cookie"
            if cacheable and len(cache) < _PAIR_CACHE_MAX:
                cache[item] = entry
        pair, length = entry
        if length is not None:
            if content_length is not None and content_length != length:
                raise AppProtocolError("conflicting Content-Length headers")
            content_length = length
        converted.append(pair)  # order kept (B8)
    return converted, content_length


def _status_code(status: object) -> int:
    if type(status) is str:
        code = _STATUS_CACHE.get(status)
        if code is not None:
            return code
    code = parse_wsgi_status(status, AppProtocolError)
    if len(_STATUS_CACHE) < _STATUS_CACHE_MAX:
        _STATUS_CACHE[status] = code  # type: ignore[index]  # a str: parsed above
    return code


class ResponseState:
    """One WSGI response: ``start_response`` (as ``__call__``) and what it decided.

    An instance *is* the ``start_response`` callable handed to the app.
    Subclasses implement :meth:`write` (PEP 3333 §The write() Callable).

    Attributes the driver reads: ``status`` (0 until a valid call),
    ``headers`` (ASGI form), ``content_length`` (declared, or None),
    ``headers_sent`` (set by the driver once ``http.response.start`` left),
    ``sent`` (body bytes sent so far).
    """

    __slots__ = ("content_length", "headers", "headers_sent", "sent", "start_called", "status")

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.content_length: int | None = None
        self.start_called = False
        self.headers_sent = False
        self.sent = 0

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None, /
    ) -> Write:
        """``start_response(status, response_headers, exc_info=None)`` (PEP 3333 §start_response).

        :param status: ``"NNN reason"``.
        :param headers: a list of ``(name, value)`` tuples of latin-1 ``str``.
        :param exc_info: ``sys.exc_info()`` when called from an error handler.
        :returns: the ``write`` callable (B2).
        :raises AppProtocolError: for a second call without ``exc_info`` (B4),
            an invalid status or header (B3), or a hop-by-hop header (B9).
        :raises BaseException: ``exc_info[1]`` when headers were already sent (B6).
        """
        if exc_info is not None and exc_info[1] is not None:
            if self.headers_sent:
                # B6 (PEP 3333 §Error Handling): "start_response must raise an
                # error, and should re-raise using the exc_info tuple".
                try:
                    raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    # PEP 3333: avoid a cycle through the traceback's frame.
                    exc_info = None
            # B5: before headers are sent, the new status and headers replace
            # the old ones (after validation, below).
        elif self.start_called:
            # B4: "fatal error" even if the first call raised: start_called
            # is set before validation.
            raise AppProtocolError("start_response() called a second time without exc_info")
        self.start_called = True
        code = _status_code(status)
        converted, content_length = _convert_headers(headers)
        self.status = code
        self.headers = converted
        self.content_length = content_length
        return self.write

    def write(self, data: bytes) -> None:
        """Send ``data`` before the iterable's output (PEP 3333 §The write() Callable).

        :raises NotImplementedError: always; the adapter overrides it.
        """
        raise NotImplementedError

    def start_message(self) -> Message:
        """The ``http.response.start`` message for the current status and headers (B8)."""
        return {"type": "http.response.start", "status": self.status, "headers": self.headers}

    def empty_body_allows_start(self) -> bool:
        """B7: ``Content-Length: 0`` lets ``http.response.start`` go before any body."""
        return self.content_length == 0

    def clip(self, chunk: bytes, method: str) -> bytes:
        """Count ``chunk`` as sent, cut to what the declared Content-Length allows (B14).

        PEP 3333 §Handling the Content-Length Header: the server "should not
        transmit more bytes to the client than the header allows".
        """
        limit = self.content_length
        if limit is not None and not is_bodiless(self.status, method):
            room = limit - self.sent
            if len(chunk) > room:
                chunk = chunk[: max(room, 0)]
        self.sent += len(chunk)
        return chunk

    def body_complete(self, method: str) -> bool:
        """Whether the declared Content-Length has been reached (stop iterating, B14)."""
        return (
            self.content_length is not None
            and self.sent >= self.content_length
            and not is_bodiless(self.status, method)
        )

    def short_by(self, method: str) -> int:
        """How many declared bytes are missing at the end of the body (B14), 0 if none."""
        if self.content_length is None or is_bodiless(self.status, method):
            return 0
        return max(self.content_length - self.sent, 0)

    def add_content_length(self, length: int, method: str) -> bool:
        """Declare ``Content-Length: length`` if the app did not (B16); return whether it did.

        Only for responses that may carry a body: for HEAD/204/304/1xx the
        headers pass through unchanged (B18).
        """
        if self.content_length is not None or is_bodiless(self.status, method):
            return False
        self.content_length = length
        self.headers = [*self.headers, (b"content-length", b"%d" % length)]
        return True


def check_body_chunk(chunk: Any) -> bytes:
    """Return ``chunk`` if it is ``bytes``, else raise (PEP 3333: the iterable yields bytes).

    :raises AppProtocolError: for ``str`` or any other type.
    """
    if type(chunk) is bytes:
        return chunk
    if isinstance(chunk, bytes):
        return bytes(chunk)
    raise AppProtocolError(f"the response iterable must yield bytes, got {type(chunk).__name__}")
