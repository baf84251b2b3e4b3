"""Hypothesis strategies for the ``wsgi.input`` streams, compared with ``io.BytesIO``.

Shared by the tests of :class:`bridge.memory_input.MemoryInput` and of
:class:`bridge.wsgi_io.StreamingInput`, so both are held to the same inputs.
"""

from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["line_chunks", "read_sizes"]

#: A body chunk of up to 12 bytes, rich in newlines, so lines split inside and
#: across chunks.
line_chunks = st.binary(max_size=12).map(lambda data: data.replace(b"\x00", b"\n"))
#: A ``size`` argument: ``None``, negative (all), zero, or up to 40 bytes.
read_sizes = st.one_of(st.none(), st.integers(min_value=-2, max_value=40))
