"""HTTP rules both directions share: status lines, field names and values.

Rules:
1. Pure functions over ``str``/``bytes``; no I/O, no state.
2. Each check raises the exception class its caller passes in, because the
   same malformed header is the *application's* fault on one side of the
   bridge and the *server's* fault on the other.
"""

from __future__ import annotations

import re
from http import HTTPStatus

from bridge.errors import ProtocolError

__all__ = [
    "HOP_BY_HOP",
    "check_field_name",
    "check_field_value",
    "is_hop_by_hop",
    "parse_wsgi_status",
    "reason_phrase",
]

# PEP 3333 §Other HTTP Features: "Applications and middleware are forbidden
# from using HTTP/1.1 "hop-by-hop" features or headers". The list is the one
# of RFC 2616 §13.5.1 that wsgiref.util.is_hop_by_hop checks.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)

# RFC 9110 §5.1: field-name = token; tchar = "!" / "#" / "$" / "%" / "&" / "'"
# / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# RFC 9110 §5.5: field values are VCHAR, obs-text, SP and HTAB; CR, LF, NUL and
# the other controls are never allowed (they enable response splitting).
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# PEP 3333 §The status Argument: "a status code and a reason phrase, in that
# order and separated by a single space, with no surrounding whitespace or
# other characters".
_STATUS = re.compile(
    r"([1-9][0-9]{2}) "  # the code and the single space
    r"(?:[^\s\x00-\x1f\x7f](?:[^\x00-\x08\x0a-\x1f\x7f]*[^\s\x00-\x1f\x7f])?)?"  # the reason
    r"\Z"
)


def is_hop_by_hop(name: str) -> bool:
    """Return whether ``name`` is a hop-by-hop header (case-insensitive)."""
    return name.lower() in HOP_BY_HOP


def check_field_name(name: str, error: type[ProtocolError]) -> None:
    """Raise ``error`` unless ``name`` is an RFC 9110 token.

    :raises ProtocolError: (the class given) for an empty name, a name with
        spaces, colons, CR/LF or any character outside the token set.
    """
    if not _TOKEN.match(name):
        raise error(f"invalid header name {name!r}: expected an RFC 9110 token")


def check_field_value(name: str, value: str, error: type[ProtocolError]) -> None:
    """Raise ``error`` if ``value`` holds CR, LF, NUL or another control character.

    HTAB is allowed (RFC 9110 §5.5), unlike ``wsgiref.validate``, which is
    stricter than both PEP 3333 and HTTP here.
    """
    if _BAD_VALUE.search(value):
        raise error(f"invalid value for header {name!r}: {value!r} contains a control character")


def parse_wsgi_status(status: object, error: type[ProtocolError]) -> int:
    """Return the integer code of a PEP 3333 status string such as ``"200 OK"``.

    The reason phrase is dropped, as ASGI www §WSGI Compatibility says.

    :raises ProtocolError: (the class given) if ``status`` is not a ``str`` of
        the form ``"NNN reason"`` with one space and no control characters.
    """
    if type(status) is not str:
        raise error(f"status must be a str such as '200 OK', got {type(status).__name__}")
    match = _STATUS.match(status)
    if match is None:
        raise error(f"invalid status {status!r}: expected 'NNN reason' with a single space")
    return int(match.group(1))


def reason_phrase(status: int) -> str:
    """Return the standard reason phrase for ``status``, or ``"Unknown"``."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
