"""The activity feed (messaging.activity) and the unit of work's hook
(messaging.unit_of_work): a notice is published only after its commit, and a
Redis that refuses or does not answer costs a bounded wait off the caller's
path and a count of dropped notices, never an error."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY
from pydantic import SecretStr

from catalogue.contracts.activity import ActivityKind, ActivityNotice
from messaging.activity import FEED_OFF, ActivityFeed, Notice, activity_feed
from messaging.settings import RedisSettings
from messaging.unit_of_work import SessionTransaction

TIMEOUT_MS = 100


def notice(kind: ActivityKind = ActivityKind.MAIL_SENT) -> ActivityNotice:
    return ActivityNotice(kind=kind, source="tests", at=datetime.now(UTC), order_id=uuid.uuid4())


def counted(outcome: str, kind: ActivityKind = ActivityKind.MAIL_SENT) -> float:
    value = REGISTRY.get_sample_value(
        "activity_notices_total", {"kind": kind.value, "outcome": outcome}
    )
    return value or 0.0


def settings(port: int, host: str = "127.0.0.1") -> RedisSettings:
    return RedisSettings(
        redis_host=host,
        redis_port=port,
        redis_password=SecretStr("secret"),
        redis_timeout_ms=TIMEOUT_MS,
    )


def closed_port() -> int:
    """A port nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A server that accepts connections and never answers: a Redis that hangs."""
    received: list[bytes] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read(4096))
        await asyncio.sleep(3600)

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, received
    finally:
        server.close()


async def until(condition: Any, timeout_s: float = 3) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


# -- the feed ----------------------------------------------------------------------
async def test_an_empty_redis_host_is_no_feed_and_counts_nothing() -> None:
    feed = activity_feed(RedisSettings(redis_host=""), "activity.tests")
    assert feed is FEED_OFF
    before = counted("dropped"), counted("published")
    await feed.start()
    feed.publish(notice())
    await feed.close()
    assert (counted("dropped"), counted("published")) == before


async def test_a_refused_connection_drops_and_counts_without_raising() -> None:
    feed = ActivityFeed(settings(closed_port()), "activity.tests", ActivityKind)
    await feed.start()
    dropped = counted("dropped")
    started = time.monotonic()
    feed.publish(notice())  # returns at once, whatever Redis does
    assert time.monotonic() - started < 0.01
    await until(lambda: counted("dropped") == dropped + 1)
    await feed.close()


async def test_a_redis_that_does_not_answer_costs_at_most_the_timeout() -> None:
    async with silent_server() as (port, received):
        feed = ActivityFeed(settings(port), "activity.tests")
        await feed.start()
        dropped, published = counted("dropped"), counted("published")
        started = time.monotonic()
        feed.publish(notice())
        await until(lambda: counted("dropped") == dropped + 1)
        waited = time.monotonic() - started
        await feed.close()
    assert received, "the feed did try"
    assert TIMEOUT_MS / 1000 * 0.9 <= waited < TIMEOUT_MS / 1000 + 0.5
    assert counted("published") == published


async def test_after_a_failure_redis_is_left_alone_for_a_while() -> None:
    """Notices in the pause are dropped without a try: a down Redis is not
    asked once per notice."""
    async with silent_server() as (port, received):
        feed = ActivityFeed(settings(port), "activity.tests", pause_after_failure_s=60)
        await feed.start()
        dropped = counted("dropped")
        feed.publish(notice())
        await until(lambda: counted("dropped") == dropped + 1)
        for _ in range(50):
            feed.publish(notice())
        assert counted("dropped") == dropped + 51
        await feed.close()
    assert len(received) == 1


class RecordingPipeline:
    def __init__(self, sent: list[tuple[str, str]]) -> None:
        self.sent = sent
        self.queued: list[tuple[str, str]] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass

    def publish(self, channel: str, body: str) -> None:
        self.queued.append((channel, body))

    async def execute(self) -> list[int]:
        self.sent += self.queued
        return [0] * len(self.queued)


class RecordingRedis:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.closed = False

    def pipeline(self, transaction: bool = True) -> RecordingPipeline:
        assert not transaction, "PUBLISH needs no MULTI/EXEC"
        return RecordingPipeline(self.sent)

    async def aclose(self) -> None:
        self.closed = True


async def test_notices_are_published_as_json_on_the_channel_and_counted() -> None:
    feed = ActivityFeed(settings(closed_port()), "activity.tests")
    redis = RecordingRedis()
    feed.redis = redis  # type: ignore[assignment]
    await feed.start()
    published = counted("published", ActivityKind.ORDER_PLACED)
    notices = [notice(ActivityKind.ORDER_PLACED) for _ in range(3)]
    for n in notices:
        feed.publish(n)
    await feed.close()
    assert redis.sent == [("activity.tests", n.model_dump_json()) for n in notices]
    assert counted("published", ActivityKind.ORDER_PLACED) == published + 3
    assert redis.closed


async def test_a_full_queue_drops_and_counts() -> None:
    feed = ActivityFeed(settings(closed_port()), "activity.tests", capacity=2)
    feed.redis = RecordingRedis()  # type: ignore[assignment]
    await feed.start()
    dropped, published = counted("dropped"), counted("published")
    for _ in range(5):  # the drain task has not run yet: 2 fit
        feed.publish(notice())
    assert counted("dropped") == dropped + 3
    await feed.close()
    assert counted("published") == published + 2


async def test_before_start_and_after_close_notices_are_dropped() -> None:
    feed = ActivityFeed(settings(closed_port()), "activity.tests")
    feed.redis = RecordingRedis()  # type: ignore[assignment]
    dropped = counted("dropped")
    feed.publish(notice())
    await feed.start()
    await feed.close()
    feed.publish(notice())
    assert counted("dropped") == dropped + 2


# -- the unit of work's hook --------------------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.published: list[Notice] = []

    def publish(self, notice: Notice) -> None:
        self.published.append(notice)


class FakeSessionTransaction:
    """`async_sessionmaker.begin()`: commits on a clean exit (or fails to)."""

    def __init__(self, log: list[str], fail_commit: bool) -> None:
        self.log = log
        self.fail_commit = fail_commit

    async def __aenter__(self) -> Any:
        return object()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self.log.append("rollback")
            return
        if self.fail_commit:
            raise ConnectionResetError("the database went away")
        self.log.append("commit")


class FakeSessions:
    def __init__(self, fail_commit: bool = False) -> None:
        self.log: list[str] = []
        self.fail_commit = fail_commit

    def begin(self) -> FakeSessionTransaction:
        return FakeSessionTransaction(self.log, self.fail_commit)


class PublishAfterCommit(Recorder):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def publish(self, notice: Notice) -> None:
        assert self.log == ["commit"], "published before the commit"
        super().publish(notice)


async def test_announced_notices_are_published_after_the_commit() -> None:
    sessions = FakeSessions()
    feed = PublishAfterCommit(sessions.log)
    first, second = notice(), notice()
    async with SessionTransaction(sessions, feed) as uow:
        uow.announce(first)
        uow.announce(second)
        assert feed.published == []
        await uow.commit()
    assert feed.published == [first, second]


async def test_nothing_is_published_when_the_work_rolls_back() -> None:
    sessions = FakeSessions()
    feed = Recorder()

    async def failing_work() -> None:
        async with SessionTransaction(sessions, feed) as uow:
            uow.announce(notice())
            raise LookupError

    with pytest.raises(LookupError):
        await failing_work()
    async with SessionTransaction(sessions, feed) as uow:
        uow.announce(notice())  # left without a commit
    assert (sessions.log, feed.published) == (["rollback", "rollback"], [])


async def test_nothing_is_published_when_the_commit_fails() -> None:
    sessions = FakeSessions(fail_commit=True)
    feed = Recorder()

    async def work() -> None:
        async with SessionTransaction(sessions, feed) as uow:
            uow.announce(notice())
            await uow.commit()

    with pytest.raises(ConnectionResetError):
        await work()
    assert feed.published == []


async def test_a_notice_carries_the_trace_id_of_the_span_it_was_announced_in() -> None:
    feed = Recorder()
    tracer = TracerProvider().get_tracer("tests")
    with tracer.start_as_current_span("work") as span:
        async with SessionTransaction(FakeSessions(), feed) as uow:
            uow.announce(notice())
            await uow.commit()
    [published] = feed.published
    assert published.trace_id == format(span.get_span_context().trace_id, "032x")
