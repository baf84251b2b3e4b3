"""The WSGI side's streams: ``wsgi.input``, ``wsgi.errors``, ``wsgi.file_wrapper`` (W→A).

Rules:
1. Nothing here touches an event loop. :class:`RequestBody` is filled by the
   adapter on the loop and spills to disk through a method the adapter runs
   in a worker thread; :class:`StreamingInput` gets its bytes from a blocking
   ``pull`` callable the adapter wires to ASGI ``receive`` across the thread
   boundary. So a lazy read blocks the worker, never the loop (SPEC A22).
2. Input streams never read past the body and return ``b""`` at EOF
   (PEP 3333 §Input and Error Streams).
3. A body that ends early (``http.disconnect`` mid-body) raises
   :class:`~bridge.errors.ClientDisconnected`, an ``OSError``, from ``read``.
4. A request frees what it made by reference counting alone. The adapter's
   ``pull`` is a method of the request's exchange, which holds the environ,
   which holds the stream: :meth:`StreamingInput.detach` breaks that cycle
   when the request ends, so the cycle collector never has to.
5. A body's memory follows its size, whatever the pieces it came in. A
   client may send its body as tiny HTTP chunks, and some servers pass each
   on as its own message: kept as they came, a 2-byte chunk costs a ``bytes``
   object and a list slot, 43 bytes (1 MB sent so held 21 MB), unseen by
   ``body_buffer_size``. So small chunks are gathered into pieces of at least
   :data:`SMALL_CHUNK` bytes (one copy of those bytes); larger ones are kept
   as they came, and reads that match them copy nothing.
"""

from __future__ import annotations

import io
import logging
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from bridge.errors import ClientDisconnected
from bridge.memory_input import MemoryInput

__all__ = [
    "SMALL_CHUNK",
    "ErrorStream",
    "FileWrapper",
    "RequestBody",
    "StreamingInput",
    "flush_gathered",
    "gather",
]

#: Default in-memory threshold of a pre-read request body (1 MiB).
BODY_BUFFER_SIZE = 1024 * 1024
# Bytes written to the temp file per worker-thread hop once a body spilled.
_MIN_SPILL_BATCH = 64 * 1024
#: Chunks smaller than this are gathered into pieces of at least this size
#: (rule 5): request body chunks here, and response chunks in the thread
#: executor's queue (rule 5 of :mod:`bridge.wsgi_outbox`); larger ones are
#: kept as they came.
SMALL_CHUNK = 4 * 1024


def gather(append: Callable[[bytes], object], small: bytearray, chunk: bytes) -> None:
    """Pass ``chunk`` on to ``append``, gathering chunks under :data:`SMALL_CHUNK` (rule 5).

    A small chunk is added to ``small``, which goes on as one piece once it
    holds :data:`SMALL_CHUNK` bytes; a larger chunk first sends on what
    ``small`` holds, to keep the order, then goes on as ``bytes``.
    """
    if len(chunk) < SMALL_CHUNK:
        small += chunk  # a copy, whatever buffer type the chunk came in
        if len(small) >= SMALL_CHUNK:
            flush_gathered(append, small)
        return
    flush_gathered(append, small)
    if type(chunk) is not bytes:
        # ASGI www §Request: body is bytes. A server that sends a bytearray or
        # memoryview must not make read() return one (PEP 3333: bytes), nor
        # see it change afterwards.
        chunk = bytes(chunk)
    append(chunk)


def flush_gathered(append: Callable[[bytes], object], small: bytearray) -> None:
    """Pass on the piece ``small`` has gathered so far, if any (rule 5)."""
    if small:
        append(bytes(small))
        small.clear()


class RequestBody:
    """A request body read ahead of the app: in memory up to a threshold, then a temp file.

    The adapter calls :meth:`append` on the loop for each ``http.request``
    chunk; when it returns ``True`` the adapter runs :meth:`spill` in a worker
    thread (disk writes never block the loop). :meth:`finish` returns the
    ``wsgi.input`` stream; :meth:`close` deletes the temp file.

    The temp file comes from :func:`tempfile.TemporaryFile`: on POSIX it has
    no name on disk at all, so even a crash leaves nothing behind.

    :param threshold: bytes kept in memory before spilling to disk.
    """

    __slots__ = (
        "_batch",
        "_chunks",
        "_file",
        "_pending",
        "_small",
        "_stream",
        "size",
        "threshold",
    )

    def __init__(self, threshold: int = BODY_BUFFER_SIZE) -> None:
        self.threshold = threshold
        self.size = 0
        self._chunks: list[bytes] = []
        self._small = bytearray()  # small chunks being gathered (rule 5)
        self._pending = 0
        self._batch = max(threshold, _MIN_SPILL_BATCH)
        self._file: IO[bytes] | None = None
        self._stream: MemoryInput | IO[bytes] | None = None

    @property
    def spilled(self) -> bool:
        """Whether the body went (or is going) to a temp file."""
        return self._file is not None or self.size > self.threshold

    def append(self, chunk: bytes) -> bool:
        """Add a chunk; return whether :meth:`spill` should now run in a worker thread."""
        size = len(chunk)
        if size:
            gather(self._chunks.append, self._small, chunk)
            self.size += size
            self._pending += size
        return self.size > self.threshold and self._pending >= self._batch

    def needs_spill(self) -> bool:
        """Whether buffered bytes must reach the temp file before :meth:`finish`."""
        return self.spilled and self._pending > 0

    def spill(self) -> None:
        """Write the buffered chunks to the temp file (blocking: run in a worker thread)."""
        if self._file is None:
            self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        flush_gathered(self._chunks.append, self._small)
        self._file.write(b"".join(self._chunks))
        self._chunks.clear()
        self._pending = 0

    def finish(self) -> MemoryInput | IO[bytes]:
        """Return the body as a readable binary stream positioned at 0.

        Call :meth:`spill` first if :meth:`needs_spill` says so.
        """
        if self._file is not None:
            self._file.seek(0)
            self._stream = self._file
        else:
            flush_gathered(self._chunks.append, self._small)
            # The chunks as they arrived, not joined: a join would copy the
            # whole body once more (bridge.memory_input says why that costs).
            self._stream = MemoryInput(self._chunks)
            self._chunks = []
        return self._stream

    def close(self) -> None:
        """Release the memory and delete the temp file; safe to call twice."""
        self._chunks = []
        self._small = bytearray()
        if self._file is not None:
            self._file.close()
        if self._stream is not None:
            self._stream.close()


def _request_over() -> tuple[bytes, bool]:
    raise ClientDisconnected("the request is over: its body can no longer be read")


def read_lines(readline: Callable[[], bytes], hint: int | None) -> list[bytes]:
    """``readlines(hint)`` for a stream: lines from ``readline()`` until ``b""``.

    Stops once the lines total at least ``hint`` bytes (when ``hint`` > 0), as
    ``io.BytesIO`` does; ``io.IOBase`` goes on until the total exceeds it.
    Every ``wsgi.input`` of ours follows ``BytesIO``, the stream apps had
    (:class:`~bridge.memory_input.MemoryInput` through ``BytesIO`` itself).
    """
    lines: list[bytes] = []
    total = 0
    while line := readline():
        lines.append(line)
        total += len(line)
        if hint is not None and 0 < hint <= total:
            break
    return lines


class StreamingInput:
    """A lazy ``wsgi.input``: bytes arrive from ``pull`` only when the app reads.

    ``pull()`` blocks the calling (worker) thread until the next ASGI
    ``http.request`` chunk arrives and returns ``(body, more_body)``; it
    raises :class:`~bridge.errors.ClientDisconnected` on ``http.disconnect``.
    Nothing is fetched ahead of the app's reads, so the client is slowed down
    by the app (backpressure) and ``Expect: 100-continue`` keeps working.

    :param pull: the blocking source of chunks.
    """

    __slots__ = ("_buffer", "_eof", "_error", "_pull")

    def __init__(self, pull: Callable[[], tuple[bytes, bool]]) -> None:
        self._pull = pull
        self._buffer = bytearray()
        self._eof = False
        self._error: BaseException | None = None

    @property
    def at_eof(self) -> bool:
        """Whether the last chunk (``more_body=False``) has been received."""
        return self._eof

    def detach(self) -> None:
        """Let go of ``pull`` once the request is over (rule 4).

        Bytes already received can still be read; a read that needs more
        raises :class:`~bridge.errors.ClientDisconnected`.
        """
        self._pull = _request_over

    def _fill(self) -> None:
        if self._error is not None:
            # A disconnect is final: every later read raises it again.
            raise self._error
        try:
            chunk, more = self._pull()
        except OSError as exc:
            self._error = exc
            raise
        self._buffer += chunk
        if not more:
            self._eof = True

    def _take(self, size: int) -> bytes:
        buffer = self._buffer
        if size >= len(buffer):
            data = bytes(buffer)
            buffer.clear()
        else:
            data = bytes(buffer[:size])
            del buffer[:size]
        return data

    def read(self, size: int | None = -1, /) -> bytes:
        """Read up to ``size`` bytes, or all of the rest when ``size`` is None or < 0.

        Returns fewer bytes only at EOF, and ``b""`` once the body is consumed.

        :raises ClientDisconnected: if the client left before the body ended.
        """
        if size is None or size < 0:
            while not self._eof:
                self._fill()
            return self._take(len(self._buffer))
        while len(self._buffer) < size and not self._eof:
            self._fill()
        return self._take(size)

    def readline(self, size: int | None = -1, /) -> bytes:
        """Read one line, up to and including ``b"\\n"``, at most ``size`` bytes.

        :raises ClientDisconnected: if the client left before the body ended.
        """
        limit = -1 if size is None else size
        start = 0
        while True:
            end = self._buffer.find(b"\n", start)
            if end >= 0:
                count = end + 1
                return self._take(count if limit < 0 else min(count, limit))
            if 0 <= limit <= len(self._buffer):
                return self._take(limit)
            if self._eof:
                return self._take(len(self._buffer))
            start = len(self._buffer)
            self._fill()

    def readlines(self, hint: int | None = -1, /) -> list[bytes]:
        """Read lines until EOF, or until they total at least ``hint`` bytes."""
        return read_lines(self.readline, hint)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class ErrorStream:
    """``wsgi.errors``: a text stream whose writes become records of the logger
    ``bridge.wsgi.errors`` at ERROR level (SPEC A23).

    Logging rather than ``sys.stderr``: the server's logging configuration
    decides where application errors go, and writes from many threads do not
    interleave. Each ``write`` is one record with its trailing newline
    removed; a write of only a newline (``print(..., file=...)`` sends one)
    makes no record. One instance is shared by every request of an adapter.

    :param logger: the logger to write to.
    """

    __slots__ = ("_logger",)

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger("bridge.wsgi.errors")

    def write(self, text: str, /) -> int:
        """Log ``text``; return its length.

        :raises TypeError: if ``text`` is not a ``str`` (this is a text stream).
        """
        if not isinstance(text, str):
            raise TypeError(f"wsgi.errors is a text stream: write() takes str, not {type(text)}")
        message = text.rstrip("\r\n")
        if message:
            self._logger.error("%s", message)
        return len(text)

    def writelines(self, lines: Iterable[str], /) -> None:
        """Write each of ``lines``."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Nothing is buffered; logging handlers flush themselves."""


class FileWrapper:
    """``wsgi.file_wrapper(filelike, block_size)`` (PEP 3333 §Optional Platform-Specific
    File Handling, SPEC A26).

    Iterating reads ``block_size`` bytes at a time from the current position
    until ``b""``; :meth:`close` closes the file. The adapter recognises an
    instance returned by the app and, when the server advertises it, sends the
    file with ``http.response.pathsend`` or ``http.response.zerocopysend``
    instead of reading it into Python.

    :param filelike: an object with ``read(size)``; ``close()`` is optional.
    :param block_size: bytes per chunk.
    """

    __slots__ = ("block_size", "filelike")

    def __init__(self, filelike: Any, block_size: int = 64 * 1024) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        size = self.block_size
        while True:
            block = read(size)
            if not block:
                return
            yield block

    def close(self) -> None:
        """Close the wrapped file (PEP 3333: "its close() method … must call filelike.close()")."""
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

    def regular_file(self) -> tuple[int, int, int] | None:
        """``(fd, position, size)`` if the wrapped object is a regular file, else None.

        Blocking (an ``fstat``): call it in the worker thread.
        """
        filelike = self.filelike
        try:
            fd = filelike.fileno()
            position = filelike.tell()
            info = os.fstat(fd)
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            return None
        if not stat.S_ISREG(info.st_mode) or type(position) is not int:
            return None
        return fd, position, info.st_size

    def source_path(self) -> str | None:
        """The absolute path the file was opened from, if it still names this file.

        Blocking (two ``stat`` calls): call it in the worker thread.
        """
        name = getattr(self.filelike, "name", None)
        if not isinstance(name, str) or not os.path.isabs(name):
            return None
        try:
            on_disk = os.stat(name)
            opened = os.fstat(self.filelike.fileno())
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            return None
        if (on_disk.st_dev, on_disk.st_ino) != (opened.st_dev, opened.st_ino):
            return None  # renamed or replaced since it was opened
        return name
