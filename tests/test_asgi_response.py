"""bridge.asgi_response: an ASGI app's messages as items for the WSGI thread (SPEC D10-D12, D16)."""

from __future__ import annotations

from queue import SimpleQueue
from typing import Any

import pytest

from bridge.asgi_messages import ResponseStart
from bridge.asgi_response import DATA, ERROR, PATH, READ_ITEM, ResponseItems, join_queued
from bridge.errors import AppProtocolError
from bridge.types import Message

OK = ResponseStart(200, "200 OK", [], False)
REASONS = {200: "OK", 103: "Early Hints", 204: "No Content", 304: "Not Modified"}


def start(status: int = 200, **extra: Any) -> Message:
    return {"type": "http.response.start", "status": status, "headers": [], **extra}


def body(data: bytes = b"", more: bool = False) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


def feed_all(items: ResponseItems, messages: list[Message]) -> list[tuple[Any, ...] | None]:
    return [items.feed(message) for message in messages]


def test_start_is_held_until_the_first_body() -> None:
    # D16: start and the first chunk cross the thread boundary as one item.
    items = ResponseItems({"method": "GET"})
    assert not items.started
    assert feed_all(items, [start(), body(b"a", more=True), body(b"b")]) == [
        None,
        (DATA, b"a", False, OK),
        (DATA, b"b", True, None),
    ]
    assert items.started


def test_empty_chunk_hands_over_nothing() -> None:
    # PEP 3333: empty chunks send nothing; the start stays held for the next one.
    items = ResponseItems({"method": "GET"})
    assert feed_all(items, [start(), body(more=True), body()]) == [
        None,
        None,
        (DATA, b"", True, OK),
    ]


@pytest.mark.parametrize(
    ("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304), ("GET", 103)]
)
def test_bodiless_responses_drop_the_body(method: str, status: int) -> None:
    # D10: HEAD, 1xx, 204 and 304 have no body.
    items = ResponseItems({"method": method})
    held = ResponseStart(status, f"{status} {REASONS[status]}", [], False)
    assert feed_all(items, [start(status), body(b"a", more=True), body(b"b")]) == [
        None,
        None,
        (DATA, b"", True, held),
    ]


def test_pathsend_is_a_path_item() -> None:
    # D12
    items = ResponseItems({"method": "GET"})
    sent = feed_all(items, [start(), {"type": "http.response.pathsend", "path": "/f"}])
    assert sent == [None, (PATH, "/f", True, OK)]


def test_pathsend_for_head_is_an_empty_body() -> None:
    # D10, D12
    items = ResponseItems({"method": "HEAD"})
    sent = feed_all(items, [start(), {"type": "http.response.pathsend", "path": "/f"}])
    assert sent == [None, (DATA, b"", True, OK)]


def test_trailers_are_waited_for_then_discarded() -> None:
    # D11
    items = ResponseItems({"method": "GET"})
    messages: list[Message] = [
        start(trailers=True),
        body(b"a"),
        {"type": "http.response.trailers", "more_trailers": True},
        {"type": "http.response.trailers"},
    ]
    with_trailers = ResponseStart(200, "200 OK", [], True)
    assert feed_all(items, messages) == [
        None,
        (DATA, b"a", False, with_trailers),
        None,
        (DATA, b"", True, None),
    ]


@pytest.mark.parametrize(
    ("messages", "held"),
    [([start()], OK), ([start(), body(b"a", more=True)], None)],
)
def test_end_finishes_a_started_response(messages: list[Message], held: Any) -> None:
    # D8: "Start but no final body -> end the response"; a held start goes with it.
    items = ResponseItems({"method": "GET"})
    feed_all(items, messages)
    assert items.end() == (DATA, b"", True, held)
    assert items.end() == (DATA, b"", True, None)


def test_invalid_message_raises() -> None:
    # D6
    with pytest.raises(AppProtocolError):
        ResponseItems({"method": "GET"}).feed(body())


def queue_of(*items: tuple[Any, ...]) -> SimpleQueue[tuple[Any, ...]]:
    queue: SimpleQueue[tuple[Any, ...]] = SimpleQueue()
    for item in items:
        queue.put(item)
    return queue


def test_join_queued_takes_what_has_accumulated() -> None:
    queue = queue_of((DATA, b"b", False, None), (DATA, b"c", False, None))
    assert join_queued(queue, b"a", 100) == (b"abc", False, None, 3)
    assert queue.empty()


def test_join_queued_never_waits_for_more() -> None:
    # Rule 5: an empty queue hands the chunk back as it is.
    assert join_queued(queue_of(), b"a", 100) == (b"a", False, None, 1)


def test_join_queued_stops_at_the_limit() -> None:
    queue = queue_of(*[(DATA, b"xx", False, None)] * 5)
    data, done, other, count = join_queued(queue, b"xx", 5)
    assert (data, done, other, count) == (b"xxxxxx", False, None, 3)  # reached 5: no more taken
    assert queue.qsize() == 3


def test_join_queued_stops_at_the_final_item() -> None:
    queue = queue_of((DATA, b"b", True, None), (ERROR, ValueError("late")))
    assert join_queued(queue, b"a", 100) == (b"ab", True, None, 2)
    assert queue.qsize() == 1  # what follows the end is left for the caller


@pytest.mark.parametrize("other", [READ_ITEM, (ERROR, ValueError("boom"))])
def test_join_queued_hands_back_an_item_of_another_kind(other: tuple[Any, ...]) -> None:
    queue = queue_of((DATA, b"b", False, None), other, (DATA, b"c", False, None))
    assert join_queued(queue, b"a", 100) == (b"ab", False, other, 2)
    assert queue.qsize() == 1  # order kept: "c" comes after the other item
