"""SPEC A22, A23, A26: wsgi.input, wsgi.errors, wsgi.file_wrapper."""

from __future__ import annotations

import io
import logging
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import ClientDisconnected
from bridge.memory_input import MemoryInput
from bridge.wsgi_io import SMALL_CHUNK, ErrorStream, FileWrapper, RequestBody, StreamingInput
from tests.stream_strategies import line_chunks, read_sizes

BODY = b"line one\nline two\n\nlast line without newline"


def streaming(chunks: list[bytes], *, disconnect: bool = False) -> StreamingInput:
    pending = list(chunks)
    pulls: list[int] = []

    def pull() -> tuple[bytes, bool]:
        pulls.append(1)
        if not pending:
            if disconnect:
                raise ClientDisconnected("gone")
            raise AssertionError("pulled past the end of the body")
        chunk = pending.pop(0)
        return chunk, bool(pending) or disconnect

    return StreamingInput(pull)


def in_memory(chunks: list[bytes]) -> MemoryInput | IO[bytes]:
    body = RequestBody()
    for chunk in chunks:
        body.append(chunk)
    return body.finish()


_OPEN: list[RequestBody] = []


def spilled(chunks: list[bytes]) -> MemoryInput | IO[bytes]:
    body = RequestBody(threshold=0)
    _OPEN.append(body)
    for chunk in chunks:
        if body.append(chunk):
            body.spill()
    if body.needs_spill():
        body.spill()
    return body.finish()


SPLITS = [[BODY], [BODY[:3], BODY[3:12], b"", BODY[12:]], [bytes([b]) for b in BODY]]
Factory = Callable[[list[bytes]], Any]
FACTORIES: list[Factory] = [streaming, in_memory, spilled]


@pytest.fixture(params=FACTORIES, ids=["streaming", "memory", "spilled"])
def factory(request: pytest.FixtureRequest) -> Iterator[Factory]:
    yield request.param
    while _OPEN:
        _OPEN.pop().close()


@pytest.mark.parametrize("chunks", SPLITS)
def test_read_all(factory: Factory, chunks: list[bytes]) -> None:  # A22
    for size in ((), (-1,), (None,)):
        stream = factory(chunks)
        assert stream.read(*size) == BODY
        assert stream.read() == b""
        assert stream.read(10) == b""


@pytest.mark.parametrize("chunks", SPLITS)
def test_read_sized(factory: Factory, chunks: list[bytes]) -> None:  # A22
    stream = factory(chunks)
    parts = []
    while part := stream.read(7):
        assert len(part) <= 7
        parts.append(part)
    assert b"".join(parts) == BODY
    assert stream.read(0) == b""


@pytest.mark.parametrize("chunks", SPLITS)
def test_readline_and_iteration(factory: Factory, chunks: list[bytes]) -> None:  # A22
    expected = BODY.splitlines(keepends=True)
    assert list(factory(chunks)) == expected
    stream = factory(chunks)
    assert [stream.readline() for _ in range(5)] == [*expected, b""]
    assert factory(chunks).readlines() == expected
    assert factory(chunks).readlines(10) == expected[:2]


@pytest.mark.parametrize("chunks", SPLITS)
def test_readline_with_limit(factory: Factory, chunks: list[bytes]) -> None:  # A22
    stream = factory(chunks)
    assert stream.readline(4) == b"line"
    assert stream.readline(100) == b" one\n"
    assert stream.readline(None) == b"line two\n"
    assert stream.readline(0) == b""
    assert stream.readline(-1) == b"\n"


_stream_operation = st.one_of(
    st.tuples(st.just("read"), read_sizes),
    st.tuples(st.just("readline"), read_sizes),
    st.tuples(st.just("readlines"), st.integers(min_value=-1, max_value=40)),
    st.tuples(st.just("next"), st.none()),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(line_chunks, min_size=1, max_size=8), st.lists(_stream_operation, max_size=12))
def test_streaming_input_reads_like_bytesio(
    chunks: list[bytes], operations: list[tuple[str, Any]]
) -> None:  # A22: the lazy stream answers as the body read at once would
    # A server sends at least one http.request; the helper fails a pull past the last.
    ours = streaming(chunks)
    reference = io.BytesIO(b"".join(chunks))
    for name, argument in operations:
        if name == "next":
            assert next(ours, None) == next(reference, None)
        else:
            assert getattr(ours, name)(argument) == getattr(reference, name)(argument), name
    assert ours.read() == reference.read()


def test_streaming_input_pulls_lazily() -> None:  # A22: lazy, never past the body
    pulled: list[int] = []
    chunks = [b"ab", b"cd", b"ef"]

    def pull() -> tuple[bytes, bool]:
        pulled.append(1)
        chunk = chunks.pop(0)
        return chunk, bool(chunks)

    stream = StreamingInput(pull)
    assert not pulled
    assert stream.read(1) == b"a"
    assert len(pulled) == 1
    assert stream.read(3) == b"bcd"
    assert len(pulled) == 2
    assert stream.at_eof is False
    assert stream.read() == b"ef"
    assert bool(stream.at_eof)
    assert stream.read() == b""
    assert len(pulled) == 3


def test_streaming_input_disconnect_raises_oserror_every_time() -> None:  # A22 R
    stream = streaming([b"abc"], disconnect=True)
    assert stream.read(3) == b"abc"
    with pytest.raises(ClientDisconnected) as info:
        stream.read()
    assert isinstance(info.value, OSError)
    with pytest.raises(ClientDisconnected):
        stream.readline()


def test_streaming_input_detached_keeps_what_it_has_and_pulls_no_more() -> None:
    # Rule 4: once the request is over, the stream lets go of the exchange.
    stream = streaming([b"ab", b"cd", b"ef"])
    assert stream.read(1) == b"a"
    stream.detach()
    assert stream.read(1) == b"b"  # already received
    with pytest.raises(ClientDisconnected, match="the request is over"):
        stream.read(1)


def test_request_body_spills_and_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    body = RequestBody(threshold=10)
    assert not body.append(b"x" * 10)
    assert body.spilled is False
    assert body.append(b"y" * 70_000)
    assert bool(body.spilled)
    body.spill()
    body.append(b"z")
    assert body.needs_spill()
    body.spill()
    stream = body.finish()
    assert not isinstance(stream, io.BytesIO)
    assert stream.read() == b"x" * 10 + b"y" * 70_000 + b"z"
    body.close()
    assert stream.closed
    body.close()  # twice is fine
    assert list(tmp_path.iterdir()) == []


def test_request_body_in_memory() -> None:
    body = RequestBody()
    assert not body.append(b"abc")
    assert not body.append(b"def")
    stream = body.finish()
    assert isinstance(stream, MemoryInput)
    assert stream.read() == b"abcdef"
    body.close()
    assert stream.closed
    empty = RequestBody()
    assert empty.finish().read() == b""


@pytest.mark.parametrize("make", [in_memory, spilled], ids=["memory", "spilled"])
def test_request_body_keeps_the_order_of_small_and_large_chunks(make: Factory) -> None:
    # Rule 5: small chunks are gathered, large ones kept; the bytes stay in order.
    chunks = [b"a" * 5, b"B" * SMALL_CHUNK, b"c" * 3, b"d" * 2, b"E" * (SMALL_CHUNK + 1), b"f"]
    stream = make(chunks)
    assert stream.read(5) == b"a" * 5
    assert stream.read() == b"".join(chunks[1:])
    while _OPEN:
        _OPEN.pop().close()


def test_request_body_memory_follows_the_payload_not_the_pieces() -> None:
    # Rule 5: 200 KB in 2-byte chunks, each a fresh object as a server's parser
    # makes them; kept as they came they would hold about 4.3 MB.
    pieces = [bytes(bytearray(b"%02d" % (i % 100))) for i in range(100_000)]
    tracemalloc.start()
    try:
        body = RequestBody()
        for piece in pieces:
            body.append(piece)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert body.size == 200_000
    assert held < 1.2 * body.size, f"{held} bytes held for a {body.size}-byte body"
    assert body.finish().read() == b"".join(pieces)
    body.close()


def test_request_body_reads_bytes_whatever_buffer_the_server_sent() -> None:
    body = RequestBody()
    sent = bytearray(b"ab")
    body.append(sent)  # type: ignore[arg-type]
    body.append(memoryview(b"cd"))  # type: ignore[arg-type]
    sent[:] = b"xx"  # the server reuses its buffer
    stream = body.finish()
    first, second = stream.read(2), stream.read(2)
    assert (first, second) == (b"ab", b"cd")
    assert type(first) is bytes
    assert type(second) is bytes
    body.close()


def test_error_stream_logs(caplog: pytest.LogCaptureFixture) -> None:  # A23
    stream = ErrorStream()
    with caplog.at_level(logging.ERROR, logger="bridge.wsgi.errors"):
        assert stream.write("first problem\n") == 14
        stream.writelines(["second\n", "third"])
        stream.write("\n")
        stream.flush()
    assert [r.getMessage() for r in caplog.records] == ["first problem", "second", "third"]
    assert {r.name for r in caplog.records} == {"bridge.wsgi.errors"}
    with pytest.raises(TypeError):
        stream.write(b"bytes")  # type: ignore[arg-type]


def test_error_stream_print(caplog: pytest.LogCaptureFixture) -> None:  # A23
    with caplog.at_level(logging.ERROR, logger="bridge.wsgi.errors"):
        print("via print", file=ErrorStream())
    assert [r.getMessage() for r in caplog.records] == ["via print"]


class Closing(io.BytesIO):
    closes = 0

    def close(self) -> None:
        self.closes += 1
        super().close()


def test_file_wrapper_iterates_from_current_position() -> None:  # A26
    filelike = Closing(b"0123456789")
    filelike.seek(3)
    wrapper = FileWrapper(filelike, 4)
    assert list(wrapper) == [b"3456", b"789"]
    wrapper.close()
    assert filelike.closes == 1


def test_file_wrapper_without_close() -> None:  # A26: close() is optional on filelike
    class Reader:
        def __init__(self) -> None:
            self.parts = [b"a", b""]

        def read(self, size: int) -> bytes:
            return self.parts.pop(0)

    wrapper = FileWrapper(Reader())
    assert list(wrapper) == [b"a"]
    wrapper.close()
    assert wrapper.regular_file() is None
    assert wrapper.source_path() is None


def test_file_wrapper_regular_file(tmp_path: Path) -> None:  # A26
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    with path.open("rb") as handle:
        handle.seek(10)
        wrapper = FileWrapper(handle)
        regular = wrapper.regular_file()
        assert regular is not None
        assert regular[1:] == (10, 100)
        assert wrapper.source_path() == str(path)
        path.rename(tmp_path / "moved")
        (tmp_path / "f.bin").write_bytes(b"other")
        assert wrapper.source_path() is None  # the name now means another file
    assert FileWrapper(io.BytesIO(b"x")).regular_file() is None


def test_iteration_protocol() -> None:
    stream: Iterator[bytes] = iter(streaming([b"a\nb"]))
    assert next(stream) == b"a\n"
    assert next(stream) == b"b"
    with pytest.raises(StopIteration):
        next(stream)
