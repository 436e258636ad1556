"""The relay's SQL against one outbox table.

The relay talks to PostgreSQL through asyncpg directly rather than through
SQLAlchemy: its few statements are fixed, it needs LISTEN/NOTIFY (an asyncpg
connection feature), and it sits on the hot path the benchmark measures. The
table itself is defined once, in messaging.outbox.schema; the states and names
this SQL uses come from messaging.outbox.names, which needs no SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from messaging.outbox.headers import OutboxHeaders, parse_outbox_headers
from messaging.outbox.names import (
    DROPPED,
    FAILED,
    PENDING,
    SENT,
    checked_table_name,
    notify_channel,
)

# A plain connection, or one borrowed from a pool.
Connection = asyncpg.Connection | PoolConnectionProxy

COLUMNS = (
    "id, message_id, message_type, destination_kind, destination, routing_key, ordering_key,"
    " payload::text as payload, headers::text as headers, priority, best_effort, attempts,"
    " created_at"
)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    message_id: UUID
    message_type: str
    destination_kind: str
    destination: str
    routing_key: str | None
    ordering_key: str
    payload: str
    headers: OutboxHeaders
    priority: int | None
    best_effort: bool
    attempts: int
    created_at: datetime

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> OutboxRow:
        """A record of `select {COLUMNS}`. Field by field (the claim's hot
        path, once per message): no intermediate dict per row."""
        return cls(
            id=r["id"],
            message_id=r["message_id"],
            message_type=r["message_type"],
            destination_kind=r["destination_kind"],
            destination=r["destination"],
            routing_key=r["routing_key"],
            ordering_key=r["ordering_key"],
            payload=r["payload"],
            headers=parse_outbox_headers(r["headers"]),
            priority=r["priority"],
            best_effort=r["best_effort"],
            attempts=r["attempts"],
            created_at=r["created_at"],
        )


@dataclass(frozen=True, slots=True)
class Retry:
    """A message-level failure: counts as an attempt; `permanent` skips the
    remaining attempts (the message can never succeed as it is)."""

    row_id: int
    error: str
    delay_s: float
    permanent: bool = False


@dataclass(frozen=True, slots=True)
class DestinationStats:
    destination: str
    pending: int
    oldest_pending_age_s: float
    failed: int
    blocked: int


@dataclass(frozen=True, slots=True)
class FailedMessage:
    message_id: UUID
    message_type: str
    destination: str
    routing_key: str | None
    ordering_key: str
    attempts: int
    last_error: str | None
    created_at: datetime


class OutboxStore:
    def __init__(self, table: str) -> None:
        t = checked_table_name(table)
        self.table = t
        self._claim = _claim_sql(t)
        self._mark_sent = f"""
            update {t} set state = '{SENT}', finished_at = now(), attempts = attempts + 1,
                last_error = null
            where id = any($1::bigint[])
        """
        self._mark_retry = _mark_retry_sql(t)
        self._stats = _stats_sql(t)
        self._purge = f"""
            delete from {t} where id in (
                select id from {t}
                where state in ('{SENT}', '{DROPPED}')
                  and finished_at < now() - make_interval(secs => $1)
                limit $2)
        """
        self._failures = f"""
            select message_id, message_type, destination, routing_key, ordering_key, attempts,
                last_error, created_at
            from {t} where state = '{FAILED}' order by id limit $1
        """
        self._redrive = f"""
            update {t} set state = '{PENDING}', attempts = 0, next_attempt_at = now()
            where state = '{FAILED}' and ($2 or message_id = any($1::uuid[]))
            returning message_id
        """

    async def claim(self, conn: Connection, limit: int, kinds: Sequence[str]) -> list[OutboxRow]:
        """Lock up to `limit` publishable rows: pending, due, and the oldest unsent
        row of their (destination, ordering key). Must run inside a transaction;
        the row locks are the lease, released by commit or by the connection dying."""
        records = await conn.fetch(self._claim, limit, list(kinds))
        return [OutboxRow.from_record(r) for r in records]

    async def mark_sent(self, conn: Connection, row_ids: Sequence[int]) -> None:
        if row_ids:
            await conn.execute(self._mark_sent, list(row_ids))

    async def mark_retry(
        self,
        conn: Connection,
        retries: Sequence[Retry],
        max_attempts: int,
        best_effort_max_attempts: int,
    ) -> list[tuple[int, str, str]]:
        """Record failed attempts; return (row id, new state, destination) per row."""
        if not retries:
            return []
        records = await conn.fetch(
            self._mark_retry,
            [r.row_id for r in retries],
            [r.error[:2000] for r in retries],
            [r.delay_s for r in retries],
            [r.permanent for r in retries],
            best_effort_max_attempts,
            max_attempts,
        )
        return [(r["id"], r["state"], r["destination"]) for r in records]

    async def stats(self, conn: Connection) -> list[DestinationStats]:
        return [DestinationStats(**dict(r)) for r in await conn.fetch(self._stats)]

    async def purge_finished(self, conn: Connection, older_than_s: float, limit: int) -> int:
        status: str = await conn.execute(self._purge, older_than_s, limit)
        return int(status.split()[-1])

    async def failures(self, conn: Connection, limit: int = 100) -> list[FailedMessage]:
        return [FailedMessage(**dict(r)) for r in await conn.fetch(self._failures, limit)]

    async def redrive(
        self, conn: Connection, message_ids: Sequence[UUID], *, all_failed: bool = False
    ) -> list[UUID]:
        """Put failed messages back to pending, with a fresh attempt budget."""
        records = await conn.fetch(self._redrive, list(message_ids), all_failed)
        if records:
            await conn.execute("select pg_notify($1, '')", notify_channel(self.table))
        return [r["message_id"] for r in records]


def _claim_sql(t: str) -> str:
    return f"""
            select {COLUMNS} from {t} o
            where o.state = '{PENDING}' and o.next_attempt_at <= now()
              and o.destination_kind = any($2::text[])
              and (o.best_effort or not exists (
                    select 1 from {t} b
                    where b.destination = o.destination and b.ordering_key = o.ordering_key
                      and b.id < o.id and b.state in ('{PENDING}', '{FAILED}')
                      and not b.best_effort))
            order by o.id
            limit $1
            for update of o skip locked
        """


def _mark_retry_sql(t: str) -> str:
    return f"""
            update {t} as t set
                attempts = t.attempts + 1,
                last_error = f.error,
                next_attempt_at = now() + make_interval(secs => f.delay),
                state = case
                    when f.permanent
                      or t.attempts + 1 >= (case when t.best_effort then $5::int else $6::int end)
                    then (case when t.best_effort then '{DROPPED}' else '{FAILED}' end)
                    else '{PENDING}' end,
                finished_at = case when t.best_effort
                    and (f.permanent or t.attempts + 1 >= $5::int) then now() end
            from unnest($1::bigint[], $2::text[], $3::float8[], $4::bool[])
                as f(id, error, delay, permanent)
            where t.id = f.id
            returning t.id, t.state, t.destination
        """


def _stats_sql(t: str) -> str:
    # Reads only unfinished rows, through the partial indexes: the table also
    # holds an hour of sent rows, which a sequential scan would read every time.
    return f"""
            select o.destination,
                count(*) filter (where o.state = '{PENDING}') as pending,
                coalesce(extract(epoch from now() - min(o.created_at)
                    filter (where o.state = '{PENDING}')), 0)::float8 as oldest_pending_age_s,
                count(*) filter (where o.state = '{FAILED}') as failed,
                count(*) filter (where o.state = '{PENDING}' and not o.best_effort and exists (
                    select 1 from {t} b
                    where b.destination = o.destination and b.ordering_key = o.ordering_key
                      and b.id < o.id and not b.best_effort
                      and (b.state = '{FAILED}' or (b.state = '{PENDING}' and b.attempts > 0))
                )) as blocked
            from (
                select destination, ordering_key, id, state, best_effort, created_at
                from {t} where state = '{PENDING}'
                union all
                select destination, ordering_key, id, state, best_effort, created_at
                from {t} where state = '{FAILED}'
            ) o
            group by o.destination
        """
