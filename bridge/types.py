"""Public type aliases for the two worlds the bridge joins.

Public signatures accept loose mappings (servers hand over plain dicts);
internal code narrows them with the TypedDicts of the translation modules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from types import TracebackType
from typing import Any, Protocol

__all__ = [
    "ASGIApp",
    "Environ",
    "ExcInfo",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "StartResponse",
    "WSGIApp",
    "Write",
]

# ASGI (asgiref specs/asgi.rst §Applications)
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# WSGI (PEP 3333 §Specification Details): environ is exactly a dict.
Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]
Write = Callable[[bytes], object]


class StartResponse(Protocol):
    """``start_response(status, response_headers, exc_info=None)`` (PEP 3333 §start_response)."""

    def __call__(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: ExcInfo | None = ...,
        /,
    ) -> Write: ...


WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
