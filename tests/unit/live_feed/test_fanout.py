"""The fan-out to browsers: every client gets every notice, a slow one is
bounded (its queue is replaced by one `resync`), and shutdown ends every
stream."""

from __future__ import annotations

import asyncio

import pytest

from live_feed import sse
from live_feed.entrypoints.app import Events, Tuning
from live_feed.fanout import CLOSE, RESYNC, Fanout


def frame(n: int) -> bytes:
    return sse.event(f'{{"n": {n}}}', "notice")


def queued(fanout: Fanout) -> list[list[bytes]]:
    return [[c.queue.get_nowait() for _ in range(c.queue.qsize())] for c in fanout.clients]


def test_every_client_gets_every_frame_in_order() -> None:
    fanout = Fanout(queue_size=8)
    fanout.connect(), fanout.connect()
    for n in range(5):
        fanout.publish(frame(n))
    assert queued(fanout) == [[frame(n) for n in range(5)]] * 2


def test_a_client_a_queue_behind_gets_one_resync_instead_of_growing() -> None:
    overflows: list[int] = []
    fanout = Fanout(queue_size=4, on_overflow=lambda: overflows.append(1))
    slow = fanout.connect()
    for n in range(4):
        fanout.publish(frame(n))
    assert slow.queue.qsize() == 4
    fanout.publish(frame(4))
    assert [slow.queue.get_nowait() for _ in range(slow.queue.qsize())] == [RESYNC]
    assert slow.overflows == 1
    assert overflows == [1]
    # After the resync it takes notices again: the ones after it.
    fanout.publish(frame(5))
    assert slow.queue.get_nowait() == frame(5)


def test_a_slow_client_never_holds_more_than_its_queue() -> None:
    fanout = Fanout(queue_size=16)
    slow, fast = fanout.connect(), fanout.connect()
    seen = []
    for n in range(10_000):
        fanout.publish(frame(n))
        seen.append(fast.queue.get_nowait())
        assert slow.queue.qsize() <= 16
    assert seen == [frame(n) for n in range(10_000)]
    assert slow.overflows > 0


def test_clients_are_counted_as_they_come_and_go() -> None:
    counts: list[int] = []
    fanout = Fanout(queue_size=4, on_clients=counts.append)
    first = fanout.connect()
    second = fanout.connect()
    fanout.disconnect(first)
    fanout.disconnect(second)
    assert counts == [1, 2, 1, 0]


def test_close_ends_every_stream_even_a_full_one_and_any_new_one() -> None:
    fanout = Fanout(queue_size=2)
    idle, full = fanout.connect(), fanout.connect()
    full.queue.put_nowait(frame(1))
    full.queue.put_nowait(frame(2))
    fanout.close()
    assert idle.queue.get_nowait() == CLOSE
    assert [full.queue.get_nowait() for _ in range(full.queue.qsize())] == [CLOSE]
    assert fanout.connect().queue.get_nowait() == CLOSE


def test_a_queue_too_small_for_a_notice_and_the_end_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        Fanout(queue_size=1)


async def test_a_stream_starts_with_retry_sends_heartbeats_and_ends_on_close() -> None:
    fanout = Fanout(queue_size=8)
    events = Events(fanout, Tuning(heartbeat_s=0.01, retry_ms=1500))
    stream = events.stream()
    assert await anext(stream) == sse.retry(1500)
    assert len(fanout.clients) == 1
    assert await anext(stream) == sse.comment("heartbeat")
    fanout.publish(frame(1))
    assert await anext(stream) == frame(1)
    fanout.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(stream), 1)
    assert fanout.clients == set()


async def test_a_browser_that_goes_away_is_forgotten() -> None:
    fanout = Fanout(queue_size=8)
    stream = Events(fanout, Tuning(heartbeat_s=60)).stream()
    await anext(stream)
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    waiting.cancel()  # what Starlette does when the client disconnects
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await stream.aclose()
    assert fanout.clients == set()
