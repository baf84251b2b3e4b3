"""ASGI ``http`` scopes for the tests, as an ASGI server hands them over (ASGI www §HTTP)."""

from __future__ import annotations

from typing import Any

from bridge.types import Scope

__all__ = ["http_scope"]


def http_scope(**overrides: Any) -> Scope:
    """A fresh scope for ``GET /`` over HTTP/1.1 with a ``Host`` header.

    ``asgi.spec_version`` is ``"2.4"``: ``send()`` after a disconnect raises
    (ASGI www §Disconnected Client).

    :param overrides: scope keys to replace or add (``method="POST"``,
        ``headers=[...]``, ``client=None``).
    """
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 8000),
    }
    scope.update(overrides)
    return scope
