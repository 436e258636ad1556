"""Outbox relay benchmark (`make bench-relay`), side by side in one run.

1. ceiling: a plain aiokafka producer sends the N messages straight from memory
   (same keys, values and CloudEvents headers; acks=all, idempotent);
2. relay: our OutboxRelay drains the same N messages from a PostgreSQL outbox;
3. peer: the PyPI faststream-outbox relay drains them from its own table;
4. latency: a writer commits one message per transaction at a steady rate while
   the relay runs; commit-to-publish latency is the broker's append time
   (LogAppendTime topic) minus the writer's commit time, on one machine clock.

Prints a per-phase breakdown of the relay's time (where it goes), then exactly
one summary line. Needs the local stack (`make up`).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import asyncpg
import httpx
import orjson
import psycopg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from psycopg import sql

from bench import peer_faststream_outbox as peer
from messaging.envelope import Contract, KafkaTopic, MessageContext, OutgoingMessage
from messaging.outbox.names import notify_trigger_ddl
from messaging.outbox.schema import outbox_table
from messaging.outbox.writer import OutboxValues, outbox_row
from outbox_relay.relay import OutboxRelay
from outbox_relay.settings import RelaySettings
from stackctl.apps import Apps
from stackctl.components import LocalStack
from stackctl.control import build
from tests.support import kafka
from tests.support.waiting import free_port, responds, wait_until

DATABASE = "bench"
T = TypeVar("T")


class BenchOrderPlaced(Contract):
    """Shaped like OrderPlaced (≈ 350 bytes of JSON)."""

    TYPE: ClassVar[str] = "order.placed"

    order_id: str
    customer_id: str
    customer_email: str
    currency: str
    total: Decimal
    lines: list[dict[str, Any]]
    placed_at: datetime


def make_messages(n: int, keys: int) -> list[OutgoingMessage]:
    topic = KafkaTopic("placeholder")
    return [
        OutgoingMessage(
            BenchOrderPlaced(
                order_id=f"order-{i % keys}",
                customer_id=f"customer-{i % 977}",
                customer_email="someone@example.com",
                currency="EUR",
                total=Decimal("59.97"),
                lines=[{"sku": f"sku-{j}", "quantity": 1, "unit_price": "19.99"} for j in range(3)],
                placed_at=datetime.now(UTC),
            ),
            topic,
            subject=f"order-{i % keys}",
            source="bench",
            context=MessageContext(correlation_id=str(uuid.uuid4())),
            trace_headers={},
        )
        for i in range(n)
    ]


def rows_for(messages: list[OutgoingMessage], topic: str) -> list[OutboxValues]:
    rows = []
    for m in messages:
        row = outbox_row(m)
        row["destination"] = topic
        rows.append(row)
    return rows


# -- setup ----------------------------------------------------------------------
async def ensure_database(stack: LocalStack) -> str:
    async with await psycopg.AsyncConnection.connect(stack.postgres_dsn(), autocommit=True) as conn:
        exists = await (
            await conn.execute("select 1 from pg_database where datname = %s", (DATABASE,))
        ).fetchone()
        if not exists:
            await conn.execute(
                sql.SQL("create database {} owner {}").format(
                    sql.Identifier(DATABASE), sql.Identifier(stack.creds.postgres["order"].user)
                )
            )
    account = stack.creds.postgres["order"]
    return f"postgresql://{account.user}:{account.password}@{stack.s.host}:{stack.s.postgres_port}/{DATABASE}"


async def create_topic(bootstrap: str, name: str, config: dict[str, str] | None = None) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, num_partitions=6, replication_factor=1, topic_configs=config or {})]
        )
    finally:
        await admin.close()
    return name


async def create_outbox(dsn: str, table: str, rows: list[OutboxValues] | None = None) -> None:
    from sqlalchemy import MetaData, insert, text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(dsn.replace("postgresql://", "postgresql+asyncpg://"))
    async with engine.begin() as conn:
        t = outbox_table(MetaData(), table)
        await conn.run_sync(t.create)
        for statement in notify_trigger_ddl(table):
            await conn.execute(text(statement))
        for start in range(0, len(rows or []), 5000):
            await conn.execute(insert(t), (rows or [])[start : start + 5000])
        await conn.execute(text(f"analyze {table}"))
    await engine.dispose()


def relay_settings(stack: LocalStack, table: str) -> RelaySettings:
    return RelaySettings.model_validate(relay_env(stack, table))


def relay_env(stack: LocalStack, table: str) -> dict[str, str]:
    env = {
        **Apps(stack).database_env("order"),
        **Apps(stack).kafka_env(),
        **Apps(stack).rabbitmq_env("order"),
        "DATABASE_NAME": DATABASE,
        "OTEL_SERVICE_NAME": "bench-relay",
        "OUTBOX_TABLE": table,
    }
    return {k.lower(): v for k, v in env.items()}


# -- phases ---------------------------------------------------------------------
async def ceiling(bootstrap: str, messages: list[OutgoingMessage]) -> float:
    topic = await create_topic(bootstrap, f"bench-ceiling-{uuid.uuid4().hex[:6]}")
    rows = rows_for(messages, topic)
    records = [
        (
            r["ordering_key"].encode(),
            orjson.dumps(r["payload"]),
            [(k, v.encode()) for k, v in r["headers"]["binary"].items()],
        )
        for r in rows
    ]
    producer = kafka.durable_producer(bootstrap, linger_ms=2)
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [
            await producer.send(topic, value=value, key=key, headers=headers)
            for key, value, headers in records
        ]
        await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await producer.stop()


class Breakdown:
    """Wall time spent in each step of the relay's batches."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, name: str, fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        async def timed(*args: Any, **kwargs: Any) -> T:
            started = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

        return timed


async def ours(
    stack: LocalStack,
    dsn: str,
    messages: list[OutgoingMessage],
    profiler: cProfile.Profile | None = None,
) -> tuple[float, Breakdown]:
    topic = await create_topic(stack.kafka_bootstrap, f"bench-relay-{uuid.uuid4().hex[:6]}")
    table = f"outbox_bench_{uuid.uuid4().hex[:6]}"
    await create_outbox(dsn, table, rows_for(messages, topic))
    relay = OutboxRelay(relay_settings(stack, table))
    breakdown = Breakdown()
    relay.store.claim = breakdown.wrap("claim", relay.store.claim)  # type: ignore[method-assign, assignment]
    relay._publish = breakdown.wrap("publish", relay._publish)  # type: ignore[method-assign, assignment]
    relay.store.mark_sent = breakdown.wrap("mark_sent", relay.store.mark_sent)  # type: ignore[method-assign, assignment]
    conn = await asyncpg.connect(dsn)
    try:
        if profiler:
            profiler.enable()
        started = time.perf_counter()
        task = asyncio.create_task(relay.run())
        while await conn.fetchval(f"select count(*) from {table} where state = 'pending'"):
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        relay.stop()
        await task
        if profiler:
            profiler.disable()
        await conn.execute(f"drop table {table}")
    finally:
        await conn.close()
    await expect_records(stack.kafka_bootstrap, topic, len(messages), "relay")
    return elapsed, breakdown


async def the_peer(stack: LocalStack, dsn: str, messages: list[OutgoingMessage]) -> float:
    topic = await create_topic(stack.kafka_bootstrap, f"bench-peer-{uuid.uuid4().hex[:6]}")
    table = f"peer_outbox_{uuid.uuid4().hex[:6]}"
    rows = rows_for(messages, topic)
    await peer.prepare(
        dsn, table, topic, [(r["ordering_key"], orjson.dumps(r["payload"])) for r in rows]
    )
    elapsed = await peer.drain(dsn, table, stack.kafka_bootstrap, topic, len(rows), timeout_s=600)
    await expect_records(stack.kafka_bootstrap, topic, len(rows), "peer")
    return elapsed


async def expect_records(bootstrap: str, topic: str, expected: int, who: str) -> None:
    """A throughput figure counts only if every message reached the topic."""
    found = sum((await kafka.end_offsets(bootstrap, topic)).values())
    if found != expected:
        raise SystemExit(f"{who}: {found} records on {topic}, expected {expected}")


async def latency(
    stack: LocalStack, dsn: str, rate: int, seconds: float, lag_trace: str | None = None
) -> tuple[list[float], int]:
    """The relay runs as its own process, as deployed (a sidecar), so the
    writer's event loop and the relay's never delay each other."""
    topic = await create_topic(
        stack.kafka_bootstrap,
        f"bench-latency-{uuid.uuid4().hex[:6]}",
        {"message.timestamp.type": "LogAppendTime"},
    )
    table = f"outbox_latency_{uuid.uuid4().hex[:6]}"
    await create_outbox(dsn, table)
    env = {
        **os.environ,
        **{k.upper(): str(v) for k, v in relay_env(stack, table).items()},
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(free_port()),
    }
    relay = subprocess.Popen(
        [str(Path(sys.executable).with_name("outbox-relay")), "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    total = int(rate * seconds)
    rows = rows_for(make_messages(total, total), topic)
    committed: dict[str, float] = {}
    pool = await asyncpg.create_pool(dsn, min_size=4, max_size=4)
    try:
        await wait_http(f"http://127.0.0.1:{env['HTTP_PORT']}/health/ready")
        await asyncio.sleep(1)  # listening for NOTIFY
        insert = (
            f"insert into {table} (message_id, message_type, destination_kind, destination,"
            " routing_key, ordering_key, payload, schema_version, headers, priority, best_effort)"
            " values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        )
        started = time.perf_counter()

        async def write(n: int, row: OutboxValues) -> None:
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    insert,
                    row["message_id"],
                    row["message_type"],
                    row["destination_kind"],
                    row["destination"],
                    row["routing_key"],
                    row["ordering_key"],
                    orjson.dumps(row["payload"]).decode(),
                    row["schema_version"],
                    orjson.dumps(row["headers"]).decode(),
                    row["priority"],
                    row["best_effort"],
                )
            committed[str(row["message_id"])] = time.time()

        # Each writer task owns a slice of consecutive messages; a few hundred
        # tasks instead of one per message keep the event loop light.
        step = max(rate // 50, 1)

        async def writer(first: int) -> None:
            for n in range(first, min(first + step, total)):
                await write(n, rows[n])

        await asyncio.gather(*(writer(first) for first in range(0, total, step)))
        records = await kafka_timestamps(stack.kafka_bootstrap, topic, total)
    finally:
        await pool.close()
        relay.send_signal(signal.SIGTERM)
        relay.wait(30)
    lags = [(ts - committed[mid]) * 1000 for mid, ts in records.items() if mid in committed]
    if lag_trace:
        with open(lag_trace, "w") as f:
            for mid, ts in records.items():
                if mid in committed:
                    f.write(f"{committed[mid]:.4f} {(ts - committed[mid]) * 1000:.1f}\n")
    return lags, total - len(lags)


async def wait_http(url: str, timeout_s: float = 30) -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        if await wait_until(lambda: responds(http, url), timeout_s, 0.2):
            return
    raise TimeoutError(f"{url} not ready after {timeout_s}s")


async def kafka_timestamps(bootstrap: str, topic: str, expected: int) -> dict[str, float]:
    from aiokafka import AIOKafkaConsumer

    tps = await kafka.partitions(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: dict[str, float] = {}
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + 120
        while len(found) < expected and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for m in messages:
                    found[dict(m.headers)["ce_id"].decode()] = m.timestamp / 1000
    finally:
        await consumer.stop()
    return found


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--keys", type=int, default=10_000, help="distinct ordering keys")
    parser.add_argument("--rate", type=int, default=500, help="messages/s for the latency phase")
    parser.add_argument("--latency-seconds", type=float, default=20)
    parser.add_argument(
        "--lag-trace", help="write 'commit_time latency_ms' per message here (to find stalls)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="profile the relay phase (cProfile, top functions)"
    )
    args = parser.parse_args()
    os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)

    stack, _ = build()
    dsn = await ensure_database(stack)
    messages = make_messages(args.messages, args.keys)
    n = len(messages)
    size = len(orjson.dumps(outbox_row(messages[0])["payload"]))
    print(f"{n} messages over {args.keys} keys, {size} bytes of JSON each")

    ceiling_s = await ceiling(stack.kafka_bootstrap, messages)
    print(f"ceiling (plain aiokafka)    {n / ceiling_s:9.0f} msgs/s  ({ceiling_s:.2f}s)")
    profiler = cProfile.Profile() if args.profile else None
    ours_s, breakdown = await ours(stack, dsn, messages, profiler)
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    print(f"relay (this project)        {n / ours_s:9.0f} msgs/s  ({ours_s:.2f}s)")
    for step, seconds in sorted(breakdown.seconds.items(), key=lambda kv: -kv[1]):
        print(f"    {step:<10} {seconds:6.2f}s summed over lanes ({seconds / ours_s:5.0%} of wall)")
    peer_s = await the_peer(stack, dsn, messages)
    print(f"peer (faststream-outbox)    {n / peer_s:9.0f} msgs/s  ({peer_s:.2f}s)")
    lags, missing = await latency(stack, dsn, args.rate, args.latency_seconds, args.lag_trace)
    p50, p99 = percentile(lags, 0.50), percentile(lags, 0.99)
    print(
        f"latency at {args.rate}/s: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(lags):.1f} ms"
        f" over {len(lags)} messages ({missing} not seen)"
    )
    print(
        f"relay_msgs_per_s={n / ours_s:.0f} ceiling_msgs_per_s={n / ceiling_s:.0f} "
        f"peer_msgs_per_s={n / peer_s:.0f} ratio_ceiling={ceiling_s / ours_s:.2f} "
        f"ratio_peer={peer_s / ours_s:.2f} p50_ms={p50:.1f} p99_ms={p99:.1f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
