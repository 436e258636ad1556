"""Activity notices on Redis pub/sub: published after the business change
committed, at most once, off the request path. The notices are the
catalogue's (catalogue.contracts.activity.ActivityNotice); this module knows
only what it publishes of them (`Notice`), on the channel it is given.

A service's unit of work announces notices (messaging.unit_of_work) and hands
them to the process's `ActivityFeed` once its commit succeeded; nothing is
handed on after a rollback. `ActivityFeed.publish` never waits and never
raises: it puts the notice in a bounded queue, and one background task per
process drains the queue into PUBLISH commands, pipelined. A notice is
dropped, and counted as such in `activity_notices_total{outcome="dropped"}`,
when the queue is full, when Redis does not answer within REDIS_TIMEOUT_MS or
refuses, when it failed less than `PAUSE_AFTER_FAILURE_S` ago (a down Redis
is tried once a second, not once per notice), and when the process stops
before the notice went out. Nothing is retried: a notice is only worth
something now, and a reader that missed some reloads the state from the
services' APIs.

With REDIS_HOST empty the feed is off (`FeedOff`): notices are discarded and
not counted, as there is no feed to lose them from (counting them as dropped
would report a loss in a deployment that chose to have no feed).

Hand-written glue around redis-py rather than a FastStream Redis broker: a
broker is part of the process's start (it must connect, or the app does not
start) and its publish is awaited by its caller and raises; the feed must do
the opposite (Redis down at start or later changes nothing but the count of
dropped notices). The notices are not messages of the system either: no
envelope, no AsyncAPI channel, no outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, Self, TypeVar

from opentelemetry import trace
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from messaging.settings import RedisSettings

LOGGER = logging.getLogger(__name__)

NOTICES = Counter(
    "activity_notices_total",
    "Activity notices for the live feed (Redis pub/sub, best effort), by kind and outcome"
    " (published, or dropped: Redis unreachable or slow, the queue full, or the process"
    " stopping).",
    ["kind", "outcome"],
)

# Notices waiting for the background task; beyond this they are dropped.
QUEUE_CAPACITY = 1000
# Notices sent in one pipeline (one round trip, one PUBLISH each).
BATCH = 100
# After Redis failed, notices are dropped without trying for this long.
PAUSE_AFTER_FAILURE_S = 1.0


class Notice(Protocol):
    """What the feed needs of a notice (a pydantic model, frozen)."""

    @property
    def kind(self) -> str: ...

    @property
    def trace_id(self) -> str | None: ...

    def model_dump_json(self) -> str: ...

    def model_copy(
        self, *, update: Mapping[str, Any] | None = None, deep: bool = False
    ) -> Self: ...


class ActivityPublisher(Protocol):
    """Where a unit of work hands its notices once it committed."""

    def publish(self, notice: Notice) -> None:
        """Never waits, never raises."""


class FeedOff:
    """REDIS_HOST is empty: no feed, notices are discarded (and not counted)."""

    def publish(self, notice: Notice) -> None:
        pass

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


FEED_OFF = FeedOff()


def current_trace_id() -> str | None:
    """The W3C trace id (32 hex digits) of the current span, if there is one."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


N = TypeVar("N", bound=Notice)


def traced(notice: N) -> N:
    """The notice with the current span's trace id, unless it has one."""
    if notice.trace_id is not None:
        return notice
    trace_id = current_trace_id()
    return notice if trace_id is None else notice.model_copy(update={"trace_id": trace_id})


class ActivityFeed:
    """The process's publisher of activity notices on its channel (a
    service's `activity.<program>`);
    `start()` and `close()` with the process (its app's start-up and shutdown)."""

    def __init__(
        self,
        settings: RedisSettings,
        channel: str,
        kinds: Iterable[str] = (),
        *,
        capacity: int = QUEUE_CAPACITY,
        pause_after_failure_s: float = PAUSE_AFTER_FAILURE_S,
    ) -> None:
        self.channel = channel
        self.timeout_s = settings.redis_timeout_ms / 1000
        self.pause_after_failure_s = pause_after_failure_s
        self.redis = Redis(
            host=settings.redis_host,
            port=settings.redis_port,
            password=settings.redis_password.get_secret_value() or None,
            socket_connect_timeout=self.timeout_s,
            socket_timeout=self.timeout_s,
            # Never retried: redis-py would otherwise try a failed command
            # three more times, with back-off, per notice.
            retry=Retry(NoBackoff(), 0),
            # One connection is all the single drain task uses.
            max_connections=2,
        )
        self._queue: asyncio.Queue[Notice] = asyncio.Queue(capacity)
        self._task: asyncio.Task[None] | None = None
        self._paused_until = 0.0
        self._failed = False
        # Every series from the start at 0 (increase() misses a series born at 1).
        for kind in kinds:
            for outcome in ("published", "dropped"):
                NOTICES.labels(str(kind), outcome)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="activity-feed")

    def publish(self, notice: Notice) -> None:
        if self._task is None or self._task.done() or time.monotonic() < self._paused_until:
            _count(notice, "dropped")
            return
        try:
            self._queue.put_nowait(notice)
        except asyncio.QueueFull:
            _count(notice, "dropped")

    async def close(self) -> None:
        """Give what is queued one timeout to go out; drop the rest."""
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), self.timeout_s)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        while not self._queue.empty():
            _count(self._queue.get_nowait(), "dropped")
            self._queue.task_done()
        await self.redis.aclose()

    async def _drain(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._send(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _send(self, batch: list[Notice]) -> None:
        if time.monotonic() < self._paused_until:
            for notice in batch:
                _count(notice, "dropped")
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for notice in batch:
                    pipe.publish(self.channel, notice.model_dump_json())
                await asyncio.wait_for(pipe.execute(), self.timeout_s)
        except asyncio.CancelledError:  # closing: these did not go out
            for notice in batch:
                _count(notice, "dropped")
            raise
        except Exception as exc:  # noqa: BLE001 - whatever Redis does, the notices are dropped
            self._paused_until = time.monotonic() + self.pause_after_failure_s
            if not self._failed:
                LOGGER.warning("activity notices are being dropped: Redis failed (%r)", exc)
            self._failed = True
            for notice in batch:
                _count(notice, "dropped")
            return
        if self._failed:
            LOGGER.info("activity notices are published again")
        self._failed = False
        for notice in batch:
            _count(notice, "published")


def _count(notice: Notice, outcome: str) -> None:
    NOTICES.labels(str(notice.kind), outcome).inc()


def activity_feed(
    settings: RedisSettings, channel: str, kinds: Iterable[str] = ()
) -> ActivityFeed | FeedOff:
    """The feed the settings describe on `channel` (its series of `kinds` at
    0 from the start); off with an empty REDIS_HOST."""
    return ActivityFeed(settings, channel, kinds) if settings.redis_host else FEED_OFF
