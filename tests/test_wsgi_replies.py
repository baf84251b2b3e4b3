"""bridge.wsgi_replies: the responses AsgiToWsgi answers with itself (SPEC D8, D9, D12)."""

from __future__ import annotations

import logging
import wsgiref.util
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bridge.asgi_messages import ResponseStart
from bridge.types import Environ, ExcInfo, Write
from bridge.wsgi_replies import error_response, no_start_response, path_response, plain_response

LOGGER = "bridge.asgi_to_wsgi"
TEXT_PLAIN = ("Content-Type", "text/plain; charset=utf-8")
START = ResponseStart(200, "200 OK", [("Content-Type", "text/plain")], False)


@dataclass
class Recorder:
    """A ``start_response`` that records its calls."""

    calls: list[tuple[str, list[tuple[str, str]], ExcInfo | None]] = field(default_factory=list)

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Write:
        self.calls.append((status, headers, exc_info))
        return self.write

    def write(self, data: bytes) -> None:
        raise AssertionError("the replies never call write()")


def raised(exc: BaseException) -> BaseException:
    """``exc`` with a traceback, as the app's exceptions arrive."""
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_plain_response_without_exc_info() -> None:
    start_response = Recorder()
    body = plain_response(start_response, "400 Bad Request", "Bad Request")
    assert body == [b"Bad Request"]
    assert start_response.calls == [
        ("400 Bad Request", [TEXT_PLAIN, ("Content-Length", "11")], None)
    ]


def test_plain_response_with_exc_info() -> None:
    # D9: start_response("500 …", h, sys.exc_info())
    exc = raised(ValueError("boom"))
    start_response = Recorder()
    body = plain_response(start_response, "500 Internal Server Error", "Érreur", exc)
    assert body == ["Érreur".encode()]
    [(status, headers, exc_info)] = start_response.calls
    assert (status, headers) == ("500 Internal Server Error", [TEXT_PLAIN, ("Content-Length", "7")])
    assert exc_info == (ValueError, exc, exc.__traceback__)


def test_plain_response_exception_without_traceback_has_no_exc_info() -> None:
    start_response = Recorder()
    plain_response(start_response, "500 Internal Server Error", "x", ValueError("never raised"))
    assert start_response.calls[0][2] is None


def test_error_response_is_500_with_exc_info_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    # D9
    exc = raised(ValueError("boom"))
    start_response = Recorder()
    assert error_response(start_response, exc) == [b"Internal Server Error"]
    [(status, _, exc_info)] = start_response.calls
    assert status == "500 Internal Server Error"
    assert exc_info is not None
    assert exc_info[1] is exc
    [record] = caplog.records
    assert (record.name, record.levelno) == (LOGGER, logging.ERROR)
    assert record.getMessage() == "Exception in ASGI application"
    assert record.exc_info is not None
    assert record.exc_info[1] is exc


@pytest.mark.parametrize(
    ("client_gone", "status", "body", "level", "message"),
    [
        (
            False,
            "500 Internal Server Error",
            b"Internal Server Error",
            logging.ERROR,
            "ASGI callable returned without starting response",  # D8
        ),
        (
            True,
            "400 Bad Request",
            b"Incomplete request",
            logging.INFO,
            "client disconnected before the response started",
        ),
    ],
)
def test_no_start_response(
    caplog: pytest.LogCaptureFixture,
    client_gone: bool,
    status: str,
    body: bytes,
    level: int,
    message: str,
) -> None:
    start_response = Recorder()
    with caplog.at_level(logging.INFO, LOGGER):
        assert no_start_response(start_response, client_gone) == [body]
    assert [(call[0], call[2]) for call in start_response.calls] == [(status, None)]
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        (LOGGER, level, message)
    ]


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "file.txt"
    path.write_bytes(b"x" * 1000 + b"end")
    return path


def test_path_response_uses_the_file_wrapper(data_file: Path) -> None:
    # D12: wsgi.file_wrapper(open(path, "rb"), chunk_size) when the server offers one.
    environ: Environ = {"wsgi.file_wrapper": wsgiref.util.FileWrapper}
    start_response = Recorder()
    body = path_response(environ, start_response, str(data_file), START, 256)
    assert start_response.calls == [("200 OK", [("Content-Type", "text/plain")], None)]
    assert isinstance(body, wsgiref.util.FileWrapper)
    assert body.blksize == 256
    chunks = list(body)
    body.close()
    assert b"".join(chunks) == b"x" * 1000 + b"end"
    assert [len(chunk) for chunk in chunks] == [256, 256, 256, 235]
    assert body.filelike.closed


def test_path_response_without_file_wrapper_reads_chunks(data_file: Path) -> None:
    # D12: without wsgi.file_wrapper, chunk_size reads; close() closes the file.
    start_response = Recorder()
    body = path_response({}, start_response, str(data_file), START, 256)
    assert start_response.calls == [("200 OK", [("Content-Type", "text/plain")], None)]
    chunks = list(body)
    assert [len(chunk) for chunk in chunks] == [256, 256, 256, 235]
    assert b"".join(chunks) == b"x" * 1000 + b"end"
    body.close()  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="closed file"):
        list(body)


def test_path_response_missing_file_is_500_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = str(tmp_path / "missing")
    start_response = Recorder()
    body = path_response({}, start_response, missing, START, 256)
    assert body == [b"Internal Server Error"]
    [(status, _, exc_info)] = start_response.calls
    assert status == "500 Internal Server Error"
    assert exc_info is not None
    assert isinstance(exc_info[1], FileNotFoundError)
    [record] = caplog.records
    assert (record.name, record.levelno) == (LOGGER, logging.ERROR)
    assert record.getMessage() == f"http.response.pathsend cannot open {missing!r}"
