"""bridge.asgi_body: bounded reads of ``wsgi.input`` and the read-ahead buffer (SPEC D1)."""

from __future__ import annotations

import io

from bridge.asgi_body import RequestBody


def fill(body: RequestBody) -> int:
    """Serve one read request the way the WSGI thread does; return the reads made."""
    reads = 0
    more = True
    while more:
        more = body.push(body.read(), stop=False)
        reads += 1
    return reads


def test_read_ahead_stops_at_four_chunks() -> None:
    # Rule 3: the thread reads on while fewer than 4 * chunk_size bytes wait.
    body = RequestBody(io.BytesIO(b"x" * 40), 40, 4)
    assert body.ask()
    assert fill(body) == 4


def test_the_loop_asks_again_once_under_half_is_left() -> None:
    # Rule 3: the next read request goes out as soon as less than half of the
    # read-ahead is buffered, so the thread reads on while the app works.
    body = RequestBody(io.BytesIO(b"x" * 40), 40, 4)
    assert body.ask()
    fill(body)  # 16 bytes buffered
    asks = [body.pop()[1] for _ in range(3)]  # 12, 8, then 4 bytes left
    assert asks == [False, False, True]
    assert not body.ask()  # one request at a time


def test_no_read_request_after_the_final_chunk() -> None:
    body = RequestBody(io.BytesIO(b"x" * 6), 6, 4)
    assert body.ask()
    assert fill(body) == 2  # 4 bytes, then the last 2 (more_body=False)
    messages = [body.pop() for _ in range(2)]
    assert [message["more_body"] for message, _ in messages if message] == [True, False]
    assert not any(ask for _, ask in messages)
    assert body.exhausted
