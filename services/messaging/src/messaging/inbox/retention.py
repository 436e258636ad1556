"""Retention of deduplication records: inbox ids and idempotency keys.

The inbox (one table per consuming service) and an HTTP API's idempotency
keys remember what was already done. Kept for ever, they grow for ever; this
module forgets records older than a window, in the process that owns the table:

- one pass at start, then one every `interval_s`, in a background task that
  shares nothing with message handling or requests but the connection pool;
- each pass deletes the oldest due rows in batches of `batch_size`, each batch
  its own short transaction (`FOR UPDATE SKIP LOCKED`, so replicas purging at
  the same time neither wait for nor repeat each other's batch), until a batch
  comes back short;
- a failing pass (the database down, a statement timeout) is logged and
  counted, and the next interval tries again; it never stops the process.

**What forgetting means.** A message whose id was purged is new again: a
duplicate that arrives after its inbox row was purged is processed a second
time, and a request retried with an Idempotency-Key after its window places a
second order. The window is therefore chosen longer than the longest time a
copy can still arrive after the first one was processed (docs/messaging.md,
"Retention of inbox ids and idempotency keys", has the numbers):

- Kafka: a record stays readable for up to the topic's retention plus the span
  of its segment (a segment is deleted only when its newest record is past
  retention; it rolls after `log.roll.hours`), plus the 5-min retention check;
  7 d + 7 d by default here. A group whose committed offsets expired
  (`offsets.retention.minutes`, 7 d after it emptied) re-reads all of that
  from the earliest offset. Hence 15 days for the inbox by default.
- RabbitMQ: an unacked delivery comes back when its channel closes, and a
  delayed retry after its retry queue's delay (seconds); the outbox relay
  republishes a row it could not mark sent as soon as it runs again. Seconds,
  unless every consumer (or the relay) stays down: an outage longer than the
  window can bring back a message whose id was already forgotten.
- Idempotency keys: clients retry within seconds or minutes; 24 hours by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from prometheus_client import Counter
from pydantic import Field
from pydantic_settings import BaseSettings
from sqlalchemy import Delete, Interval, Table, delete, func, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from messaging.settings import SETTINGS_CONFIG
from messaging.unavailable import transient_errors

log = logging.getLogger(__name__)

PURGED = Counter(
    "messaging_retention_purged_rows_total",
    "Deduplication records (inbox ids, idempotency keys) deleted after their retention window.",
    ["table"],
)
FAILURES = Counter(
    "messaging_retention_failures_total",
    "Purge passes that failed (database unreachable, statement timeout); retried next interval.",
    ["table"],
)


class InboxRetentionSettings(BaseSettings):
    """How long a consuming service remembers message ids, and how it forgets them."""

    model_config = SETTINGS_CONFIG

    # Longer than any redelivery: Kafka keeps a record up to retention (7 d)
    # plus its segment's span (log.roll.hours, 7 d) plus the 5-min check.
    inbox_retention_days: float = Field(default=15, gt=0)
    inbox_purge_interval_s: float = Field(default=300, gt=0)
    inbox_purge_batch_size: int = Field(default=1000, ge=1, le=100_000)


@dataclass(frozen=True)
class Retention:
    """Rows of `table` whose `column` is older than `keep` are to be deleted."""

    table: Table
    column: str
    keep: timedelta

    @property
    def name(self) -> str:
        return self.table.name

    def purge_statement(self, limit: int) -> Delete:
        """Delete the `limit` oldest due rows, skipping rows another transaction
        holds (a concurrent purge by another replica)."""
        at = self.table.c[self.column]
        key = list(self.table.primary_key.columns)
        oldest = (
            select(*key)
            .where(at < func.now() - literal(self.keep, Interval()))
            .order_by(at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return delete(self.table).where(tuple_(*key).in_(oldest))


async def purge_batch(session: AsyncSession, retention: Retention, limit: int) -> int:
    """One batch, in the caller's transaction; the number of rows deleted."""
    result = await session.execute(retention.purge_statement(limit))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


class RetentionTask:
    """Purges each table's due rows once at start, then every `interval_s`."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        retentions: Sequence[Retention],
        interval_s: float,
        batch_size: int,
    ) -> None:
        self.sessions = sessions
        self.retentions = list(retentions)
        self.interval_s = interval_s
        self.batch_size = batch_size
        self.stop_timeout_s = 15.0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        for r in self.retentions:
            # Series at 0 from the start: increase() misses a series born at 1.
            PURGED.labels(r.name)
            FAILURES.labels(r.name)

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        """Let the batch in flight finish (bounded by the statement timeout),
        then end; cancel it if it takes longer than `stop_timeout_s`."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None and not task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(task, self.stop_timeout_s)

    async def purge(self, retention: Retention) -> int:
        """Delete every due row of one table, batch by batch."""
        total = 0
        while not self._stopping.is_set():
            async with self.sessions.begin() as session:
                deleted = await purge_batch(session, retention, self.batch_size)
            PURGED.labels(retention.name).inc(deleted)
            total += deleted
            if deleted < self.batch_size:
                break
        return total

    async def purge_all(self) -> dict[str, int]:
        """One pass over every table; a failure of one is logged, counted and
        left for the next pass."""
        purged: dict[str, int] = {}
        for retention in self.retentions:
            try:
                purged[retention.name] = await self.purge(retention)
            except transient_errors() as exc:
                FAILURES.labels(retention.name).inc()
                log.warning(
                    "purging %s failed (%r); next try in %.0fs",
                    retention.name,
                    exc,
                    self.interval_s,
                )
            except Exception:
                FAILURES.labels(retention.name).inc()
                log.exception(
                    "purging %s failed; next try in %.0fs", retention.name, self.interval_s
                )
            else:
                if purged[retention.name]:
                    log.info(
                        "purged %d rows of %s older than %g h",
                        purged[retention.name],
                        retention.name,
                        retention.keep.total_seconds() / 3600,
                    )
        return purged

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            await self.purge_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)


def inbox_retention(
    sessions: async_sessionmaker[AsyncSession], inbox: Table, settings: InboxRetentionSettings
) -> RetentionTask:
    """The retention task of a consuming service's inbox table."""
    return RetentionTask(
        sessions,
        [Retention(inbox, "received_at", timedelta(days=settings.inbox_retention_days))],
        settings.inbox_purge_interval_s,
        settings.inbox_purge_batch_size,
    )
