"""Rebuild the points projection by replaying `orders` from the beginning.

A new consumer group reads the topic from offset 0 up to the end offsets seen at
start, and feeds every event to the same handlers the live consumer uses, but
against a fresh schema (`replay_<timestamp>`; SQLAlchemy's schema translation
points the same tables there). Then it compares, per customer, the points that
orders granted and revoked in the replay with the live ledger. Manual
adjustments (GrantPoints) are not on `orders` and are left out of the
comparison. Only what Kafka still retains can be replayed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from catalogue.contracts.orders import OrderCancelled, OrderPlaced
from catalogue.topology import ORDERS
from messaging.connections import kafka_client_options
from messaging.consumer import Envelope, PoisonMessageError, expect_version
from messaging.database import build_engine
from point_service.adapters.orm import metadata
from point_service.service_layer import handlers
from point_service.service_layer.unit_of_work import UnitOfWork, UnitOfWorkFactory
from point_service.settings import PointServiceSettings

ORDER_POINTS = (
    "select customer_id, sum(points)::bigint as points from {schema}point_ledger "
    "where kind in ('grant', 'revoke') group by customer_id"
)


async def order_points(engine: AsyncEngine, schema: str = "") -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(text(ORDER_POINTS.format(schema=schema)))
        return {r.customer_id: r.points for r in rows}


async def replay_into(
    settings: PointServiceSettings, engine: AsyncEngine, group: str
) -> tuple[int, int]:
    """Apply every retained `orders` event; return (applied, skipped as poison)."""
    units = partial(UnitOfWork, async_sessionmaker(engine, expire_on_commit=False))
    consumer = AIOKafkaConsumer(
        **kafka_client_options(settings),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    applied = skipped = 0
    try:
        consumer.subscribe([ORDERS.topic])
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=200)
        partitions = consumer.assignment()
        ends = await consumer.end_offsets(list(partitions))
        for tp in partitions:
            await consumer.seek_to_beginning(tp)
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500, max_records=500)).values():
                for record in records:
                    if record.offset >= ends[TopicPartition(record.topic, record.partition)]:
                        continue
                    try:
                        await apply(record.headers, record.value, units, settings)
                        applied += 1
                    except (PoisonMessageError, ValueError):
                        skipped += 1
        await consumer.commit()
    finally:
        await consumer.stop()
    return applied, skipped


# The contracts the live consumer takes on `orders` (entrypoints/consumers.py).
CONTRACTS: dict[str, type[OrderPlaced] | type[OrderCancelled]] = {
    OrderPlaced.TYPE: OrderPlaced,
    OrderCancelled.TYPE: OrderCancelled,
}


async def apply(
    headers: Any, value: bytes, units: UnitOfWorkFactory, settings: PointServiceSettings
) -> None:
    """Apply one record, judged as the live consumer judges it: what it
    dead-letters is skipped here (PoisonMessageError, ValueError), or the
    replay would grant points the live ledger never had."""
    raw: Mapping[str, bytes | None] = dict(headers)
    env = Envelope.from_headers(raw)
    # The live consumer chooses its handler by the exact `ce_type` header.
    contract = CONTRACTS.get((raw.get("ce_type") or b"").decode(errors="replace"))
    if contract is None:
        raise PoisonMessageError(f"no handler for message type {env.type!r}")
    expect_version(env, contract)
    # FastStream reads the body as JSON under a JSON content type, or none.
    content_type = raw.get("content-type")
    if content_type and not content_type.startswith(b"application/json"):
        raise PoisonMessageError(f"content type {content_type!r} is not JSON")
    try:
        body: Mapping[str, Any] = json.loads(value or b"")
    except RecursionError as exc:  # nested deeper than the parser goes: not a ValueError
        raise PoisonMessageError("JSON nested too deep") from exc
    uow = units(env.caused())
    if contract is OrderPlaced:
        await handlers.order_placed(
            OrderPlaced.model_validate(body), env, uow, settings.points_per_currency_unit
        )
    else:
        await handlers.order_cancelled(OrderCancelled.model_validate(body), env, uow)


async def rebuild_projection(settings: PointServiceSettings, *, keep: bool = False) -> int:
    stamp = time.strftime("%Y%m%d%H%M%S")
    schema = f"replay_{stamp}"
    live = build_engine(settings, "point-service-replay")
    replay = live.execution_options(schema_translate_map={None: schema})
    try:
        async with live.begin() as conn:
            await conn.execute(text(f'create schema "{schema}"'))
        async with replay.begin() as conn:
            await conn.run_sync(metadata.create_all)
        started = time.monotonic()
        applied, skipped = await replay_into(settings, replay, f"point-service-replay-{stamp}")
        rebuilt = await order_points(live, f'"{schema}".')
        current = await order_points(live)
        print(
            f"replayed {applied} events ({skipped} unreadable, skipped) of `{ORDERS.topic}` "
            f"in {time.monotonic() - started:.1f}s into schema {schema}"
        )
        differences = {
            c: (current.get(c, 0), rebuilt.get(c, 0))
            for c in set(current) | set(rebuilt)
            if current.get(c, 0) != rebuilt.get(c, 0)
        }
        for customer, (was, now) in sorted(differences.items())[:20]:
            print(f"  {customer}: live {was}, replay {now}")
        print(
            f"customers={len(set(current) | set(rebuilt))} differences={len(differences)} "
            f"schema={schema if keep else '(dropped)'}"
        )
        return 1 if differences else 0
    finally:
        if not keep:
            async with live.begin() as conn:
                await conn.execute(text(f'drop schema if exists "{schema}" cascade'))
        await live.dispose()
