"""The WSGI responses ``AsgiToWsgi`` answers with itself, not from the app's body (A→W).

Rules:
1. Each function calls ``start_response`` exactly once and returns the WSGI
   body iterable; the caller returns it to the server as is.
2. An exception before any body is passed to ``start_response`` as
   ``exc_info`` (D9: ``start_response("500 …", h, sys.exc_info())``,
   PEP 3333 §Error Handling).
3. A file the app sends with ``http.response.pathsend`` (D12) is opened in
   the WSGI server's thread and read there, lazily: through
   ``wsgi.file_wrapper`` when the server offers one, else in ``chunk_size``
   reads; either way the server's ``close()`` closes the file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import IO

from bridge.asgi_messages import ResponseStart
from bridge.types import Environ, StartResponse

__all__ = ["error_response", "no_start_response", "path_response", "plain_response"]

logger = logging.getLogger("bridge.asgi_to_wsgi")

_ERROR_HEADERS = [("Content-Type", "text/plain; charset=utf-8")]


def plain_response(
    start_response: StartResponse, status: str, text: str, exc: BaseException | None = None
) -> list[bytes]:
    """Answer with a short ``text/plain`` body; with ``exc``, pass it as ``exc_info``.

    :param start_response: the server's ``start_response``.
    :param status: the PEP 3333 status string, ``"500 Internal Server Error"``.
    :param text: the body, encoded as UTF-8.
    :param exc: the exception to pass as ``exc_info`` (rule 2), if any.
    :returns: the body, one chunk.
    """
    body = text.encode()
    headers = [*_ERROR_HEADERS, ("Content-Length", str(len(body)))]
    traceback = None if exc is None else exc.__traceback__
    if exc is None or traceback is None:
        start_response(status, headers)
    else:
        start_response(status, headers, (type(exc), exc, traceback))
    return [body]


def error_response(start_response: StartResponse, exc: BaseException) -> list[bytes]:
    """Log ``exc`` the app raised before any body and answer with a 500 (D9, rule 2).

    :param start_response: the server's ``start_response``.
    :param exc: the exception the app raised.
    :returns: the body, one chunk.
    """
    # D9: before any body, 500 via start_response with exc_info.
    logger.error("Exception in ASGI application", exc_info=exc)
    return plain_response(start_response, "500 Internal Server Error", "Internal Server Error", exc)


def no_start_response(start_response: StartResponse, client_gone: bool) -> list[bytes]:
    """Answer for an app that returned without ``http.response.start`` (D8).

    :param start_response: the server's ``start_response``.
    :param client_gone: whether the client disconnected first: a 400, logged at
        info level, instead of a 500 logged as an error.
    :returns: the body, one chunk.
    """
    if client_gone:
        logger.info("client disconnected before the response started")
        return plain_response(start_response, "400 Bad Request", "Incomplete request")
    # D8: "No start -> 500."
    logger.error("ASGI callable returned without starting response")
    return plain_response(start_response, "500 Internal Server Error", "Internal Server Error")


class _FileChunks:
    """pathsend without ``wsgi.file_wrapper``: the file in chunks, closed by ``close()``."""

    def __init__(self, file: IO[bytes], chunk_size: int) -> None:
        self._file = file
        self._chunk_size = chunk_size

    def __iter__(self) -> Iterator[bytes]:
        return iter(lambda: self._file.read(self._chunk_size), b"")

    def close(self) -> None:
        self._file.close()


def path_response(
    environ: Environ,
    start_response: StartResponse,
    path: str,
    start: ResponseStart,
    chunk_size: int,
) -> Iterable[bytes]:
    """Answer ``http.response.pathsend`` with the file at ``path`` (D12, rule 3).

    A file that cannot be opened is logged and answered with a 500.

    :param environ: the request's WSGI environ (for ``wsgi.file_wrapper``).
    :param start_response: the server's ``start_response``.
    :param path: the file the app named.
    :param start: the app's checked ``http.response.start``.
    :param chunk_size: the size of each read.
    :returns: the body iterable; its ``close()`` closes the file.
    """
    try:
        file = open(path, "rb")  # noqa: SIM115 - closed by the file wrapper
    except OSError as exc:
        logger.error("http.response.pathsend cannot open %r", path, exc_info=exc)
        return plain_response(
            start_response, "500 Internal Server Error", "Internal Server Error", exc
        )
    start_response(start.status_line, start.headers)
    file_wrapper = environ.get("wsgi.file_wrapper")
    if file_wrapper is not None:
        return file_wrapper(file, chunk_size)  # type: ignore[no-any-return]
    return _FileChunks(file, chunk_size)
