"""The peer in the relay benchmark: the PyPI `faststream-outbox` relay.

Its model: an outbox table per application (`make_outbox_table`); rows are
written with `OutboxBroker.publish(..., session=...)` in the caller's
transaction; a FastStream subscriber on the table claims rows with a lease
(`FOR UPDATE SKIP LOCKED` then a lease token), wakes on LISTEN/NOTIFY with
asyncpg, hands each row to a handler, and deletes it once the handler (here:
a relay that returns the row as a KafkaResponse to a Kafka publisher) has
succeeded. It has no per-key ordering. It is given a fair, throughput-minded
configuration: 32 workers, batches of 500, an idempotent acks=all producer
like ours, and the Kafka key carried in a row header.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from faststream import Context
from faststream.kafka import KafkaBroker, KafkaResponse
from faststream_outbox import OutboxBroker, make_outbox_table
from sqlalchemy import MetaData, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

WORKERS = 32
FETCH_BATCH = 500


def _engine(dsn: str) -> AsyncEngine:
    return create_async_engine(dsn.replace("postgresql://", "postgresql+asyncpg://"), pool_size=40)


async def prepare(dsn: str, table: str, topic: str, messages: list[tuple[str, bytes]]) -> None:
    """Create the peer's table and write the messages through its own publish API
    (one batch per key, since the key travels in the batch's shared headers)."""
    engine = _engine(dsn)
    metadata = MetaData()
    outbox = make_outbox_table(metadata, table_name=table)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        broker = OutboxBroker(engine, outbox_table=outbox)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        ordered = sorted(messages, key=lambda m: m[0])
        async with sessions() as session, session.begin():
            for key, group in itertools.groupby(ordered, key=lambda m: m[0]):
                values = [value for _, value in group]
                await broker.publish_batch(
                    *values, queue=topic, session=session, headers={"key": key}
                )
    finally:
        await engine.dispose()


async def drain(
    dsn: str, table: str, bootstrap: str, topic: str, expected: int, timeout_s: float
) -> float:
    """Run the peer's relay until its table is empty; return the seconds it took."""
    engine = _engine(dsn)
    metadata = MetaData()
    outbox = make_outbox_table(metadata, table_name=table)
    # No per-message log lines (FastStream's default): our relay logs none either.
    outbox_broker = OutboxBroker(engine, outbox_table=outbox, logger=None)
    kafka = KafkaBroker(bootstrap, acks="all", enable_idempotence=True, linger_ms=2, logger=None)

    @kafka.publisher(topic)
    @outbox_broker.subscriber(
        topic,
        max_workers=WORKERS,
        fetch_batch_size=FETCH_BATCH,
        min_fetch_interval=0.01,
        max_fetch_interval=0.5,
    )
    async def relay(message: Any = Context("message")) -> KafkaResponse:  # noqa: B008
        # The raw row body, passed through as is: no decode and re-encode on the peer's path.
        return KafkaResponse(message.body, key=message.headers["key"].encode())

    count = select(func.count()).select_from(outbox)
    try:
        await kafka.start()
        started = time.perf_counter()
        await outbox_broker.start()
        deadline = started + timeout_s
        async with engine.connect() as conn:
            while (await conn.execute(count)).scalar_one() > 0:
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"the peer did not drain {expected} rows in {timeout_s}s")
                await asyncio.sleep(0.05)
                await conn.commit()
        return time.perf_counter() - started
    finally:
        await outbox_broker.stop()
        await kafka.stop()
        async with engine.begin() as conn:
            await conn.run_sync(outbox.drop)
        await engine.dispose()
