"""SSE framing: what the browser's EventSource parses."""

from __future__ import annotations

import pytest

from live_feed import sse
from tests.support.sse import SseReader


def parse(stream: bytes) -> list[dict[str, str]]:
    """The events of a stream as the WHATWG algorithm dispatches them (comments
    and retry lines set no event)."""
    reader = SseReader()
    events = [reader.line(line) for line in stream.decode().split("\n")]
    return [{"event": e[0], "data": e[1]} for e in events if e is not None]


def test_an_event_is_its_name_and_data_ended_by_a_blank_line() -> None:
    frame = sse.event('{"kind": "order.placed"}', "notice")
    assert frame == b'event: notice\ndata: {"kind": "order.placed"}\n\n'
    assert parse(frame) == [{"event": "notice", "data": '{"kind": "order.placed"}'}]


def test_data_with_line_breaks_arrives_whole() -> None:
    frame = sse.event("one\ntwo\r\nthree\rfour")
    assert parse(frame) == [{"event": "message", "data": "one\ntwo\nthree\nfour"}]
    assert frame.count(b"data: ") == 4


def test_a_name_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError, match="one line"):
        sse.event("{}", "notice\ndata: forged")


def test_comments_and_retry_dispatch_nothing() -> None:
    stream = sse.retry(2000) + sse.comment("heartbeat") + sse.event("x", "notice")
    assert stream.startswith(b"retry: 2000\n\n: heartbeat\n\n")
    assert parse(stream) == [{"event": "notice", "data": "x"}]
