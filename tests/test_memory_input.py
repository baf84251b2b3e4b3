"""MemoryInput reads like io.BytesIO over the joined chunks, without joining them."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.memory_input import MemoryInput
from tests.stream_strategies import line_chunks, read_sizes

_operation = st.one_of(
    st.tuples(st.just("read"), read_sizes),
    st.tuples(st.just("read1"), read_sizes),
    st.tuples(st.just("readline"), read_sizes),
    st.tuples(st.just("readlines"), st.integers(min_value=-1, max_value=40)),
    st.tuples(st.just("readinto"), st.integers(min_value=0, max_value=40)),
    st.tuples(st.just("next"), st.none()),
    st.tuples(st.just("tell"), st.none()),
    st.tuples(
        st.just("seek"),
        st.tuples(st.integers(min_value=-50, max_value=80), st.sampled_from([0, 1, 2])),
    ),
)


def _apply(stream: Any, name: str, argument: Any) -> object:
    if name == "readinto":
        buffer = bytearray(argument)
        count = stream.readinto(buffer)
        return count, bytes(buffer[:count])
    if name == "next":
        return next(stream, None)
    if name == "tell":
        return stream.tell()
    if name == "seek":
        try:
            return stream.seek(*argument)
        except ValueError:
            return "ValueError"
    return getattr(stream, name)(argument)


class _Captured:
    """``stream``'s methods as bound before any read, the way an app may keep them."""

    def __init__(self, stream: MemoryInput) -> None:
        for name in ("read", "read1", "readline", "readlines", "readinto", "seek", "tell"):
            setattr(self, name, getattr(stream, name))
        self._stream = stream

    def __next__(self) -> bytes:
        return next(self._stream)


# Rule 5: the first line read swaps the stream's methods for io.BytesIO's;
# the ones an app took before that must follow the same position.
@pytest.mark.parametrize("methods", [lambda stream: stream, _Captured], ids=["stream", "bound"])
@settings(max_examples=300, deadline=None)
@given(st.lists(line_chunks, max_size=8), st.lists(_operation, max_size=12))
def test_reads_like_bytesio_over_the_joined_body(
    methods: Callable[[MemoryInput], Any], chunks: list[bytes], operations: list[tuple[str, Any]]
) -> None:
    ours = methods(MemoryInput(list(chunks)))
    reference = io.BytesIO(b"".join(chunks))
    for name, argument in operations:
        assert _apply(ours, name, argument) == _apply(reference, name, argument), (name, argument)
    assert ours.read() == reference.read()


def test_a_read_of_a_whole_chunk_returns_the_chunk_itself() -> None:
    first, second = b"a" * 1000, b"b" * 1000
    stream = MemoryInput([first, second])
    assert stream.read(1000) is first
    assert stream.read(1000) is second
    assert stream.read(1000) == b""


def test_a_read_across_chunks_joins_only_what_it_returns() -> None:
    stream = MemoryInput([b"abc", b"", b"def", b"gh"])
    assert stream.read(2) == b"ab"
    assert stream.read(5) == b"cdefg"
    assert stream.tell() == 7
    assert stream.read() == b"h"


def test_lines_span_chunks() -> None:
    stream = MemoryInput([b"one\ntw", b"o", b"\nthree"])
    assert list(stream) == [b"one\n", b"two\n", b"three"]
    stream.seek(0)
    assert stream.readlines() == [b"one\n", b"two\n", b"three"]
    stream.seek(4)
    assert stream.readline(2) == b"tw"


def test_it_is_a_read_only_seekable_binary_stream() -> None:
    stream = MemoryInput([b"data"])
    assert isinstance(stream, io.BufferedIOBase)
    assert stream.readable()
    assert stream.seekable()
    assert not stream.writable()
    with pytest.raises(io.UnsupportedOperation):
        stream.write(b"x")
    with pytest.raises(io.UnsupportedOperation):
        stream.fileno()


def test_seek_rejects_a_negative_position_and_an_unknown_whence() -> None:
    stream = MemoryInput([b"data"])
    with pytest.raises(ValueError, match="negative"):
        stream.seek(-1)
    with pytest.raises(ValueError, match="whence"):
        stream.seek(0, 3)
    assert stream.seek(10) == 10
    assert stream.read() == b""


def test_close_releases_the_chunks_and_reads_then_fail() -> None:
    stream = MemoryInput([b"data"])
    assert stream.read(1) == b"d"
    stream.close()
    stream.close()
    assert stream.closed
    for operation in (stream.read, stream.readline, stream.tell, stream.readable):
        with pytest.raises(ValueError, match="closed"):
            operation()
    with pytest.raises(ValueError, match="closed"):
        stream.readinto(bytearray(1))
    with pytest.raises(ValueError, match="closed"):
        stream.read(1)  # mid-chunk: read()'s fast path must not apply


def test_the_first_line_joins_the_body_once_and_lines_then_come_from_io_bytesio() -> None:
    first, second = b"one\ntw", b"o\nthree\n"
    stream = MemoryInput([first, second])
    assert stream.read(2) == b"on"
    assert stream.readline() == b"e\n"
    # The chunks went into one io.BytesIO: the stream's methods are its own now.
    assert stream._chunks == []
    assert isinstance(stream._joined, io.BytesIO)
    assert stream.readline.__self__ is stream._joined  # type: ignore[attr-defined]
    assert stream.tell() == 4
    assert list(stream) == [b"two\n", b"three\n"]
    stream.seek(0)
    assert stream.read(4) == b"one\n"
    assert stream.readlines() == [b"two\n", b"three\n"]


def test_close_after_a_line_closes_the_joined_body_too() -> None:
    stream = MemoryInput([b"a\nb\n"])
    read = stream.read  # bound before the first line
    assert stream.readline() == b"a\n"
    joined = stream._joined
    stream.close()
    assert stream.closed
    assert joined is not None
    assert joined.closed
    for operation in (stream.read, stream.readline, stream.tell, read):
        with pytest.raises(ValueError, match="closed"):
            operation()
    with pytest.raises(ValueError, match="closed"):
        list(stream)


def test_a_line_read_on_a_closed_stream_fails() -> None:
    stream = MemoryInput([b"a\nb\n"])
    stream.close()
    with pytest.raises(ValueError, match="closed"):
        stream.readline()
    with pytest.raises(ValueError, match="closed"):
        stream.readlines()
    assert stream._joined is None
