"""Deferred offset commits (messaging.offsets) on the real Kafka, through
FastStream's subscriber as point-service declares it: only handled records are
committed, a few commits for many records, and what was handled but not yet
committed when a consumer dies is delivered again to the next one."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from prometheus_client import REGISTRY

from messaging.offsets import DeferredCommits
from stackctl.components import LocalStack
from tests.integration.test_kafka import produce
from tests.support.kafka import create_topic
from tests.support.waiting import eventually, wait_until

PARTITIONS = 3
RECORDS = 60


@asynccontextmanager
async def subscriber(
    bootstrap: str, topic: str, group: str, commits: DeferredCommits, seen: list[str]
) -> AsyncIterator[KafkaBroker]:
    broker = KafkaBroker(bootstrap)

    @broker.subscriber(
        topic,
        group_id=group,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        parser=commits.parse,
        listener=commits,
    )
    async def handle(body: str) -> None:
        seen.append(body)

    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


async def committed(bootstrap: str, topic: str, group: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return sum([await consumer.committed(tp) or 0 for tp in tps])
    finally:
        await consumer.stop()


def commits_so_far() -> float:
    return REGISTRY.get_sample_value("kafka_offset_commits_total", {"outcome": "ok"}) or 0.0


async def test_handled_records_are_committed_a_few_at_a_time(local_stack: LocalStack) -> None:
    bootstrap = local_stack.kafka_bootstrap
    topic, group = (
        await create_topic(bootstrap, PARTITIONS, "it-offsets"),
        f"it-offsets-{uuid.uuid4().hex[:8]}",
    )
    commits, seen = DeferredCommits(interval_s=0.2), list[str]()
    before = commits_so_far()
    async with subscriber(bootstrap, topic, group, commits, seen):
        await produce(bootstrap, topic, 0, RECORDS)
        assert await handled(seen, RECORDS)
        done = await eventually(lambda: committed(bootstrap, topic, group), RECORDS.__eq__, 30)
        assert done == RECORDS
    made = commits_so_far() - before
    assert 1 <= made < RECORDS / 4, f"{made} commits for {RECORDS} records"


async def test_what_was_handled_but_not_committed_is_delivered_again(
    local_stack: LocalStack,
) -> None:
    """A consumer that dies between commits (here: an interval longer than the
    test, and no close) leaves its handled records to the next consumer of
    the group: at-least-once, the inbox absorbs them. With close() before the
    broker stops, nothing comes again."""
    bootstrap = local_stack.kafka_bootstrap
    topic, group = (
        await create_topic(bootstrap, PARTITIONS, "it-offsets"),
        f"it-offsets-{uuid.uuid4().hex[:8]}",
    )
    await produce(bootstrap, topic, 0, RECORDS)

    first: list[str] = []
    async with subscriber(bootstrap, topic, group, DeferredCommits(interval_s=600), first):
        assert await handled(first, RECORDS)
    assert await committed(bootstrap, topic, group) == 0

    again: list[str] = []
    closing = DeferredCommits(interval_s=600)
    async with subscriber(bootstrap, topic, group, closing, again):
        assert await handled(again, RECORDS)
        await closing.close()
    assert sorted(again) == sorted(first)
    assert await committed(bootstrap, topic, group) == RECORDS

    after_close: list[str] = []
    async with subscriber(bootstrap, topic, group, DeferredCommits(), after_close):
        await produce(bootstrap, topic, RECORDS, 1)
        assert await handled(after_close, 1)
        await asyncio.sleep(1)
    assert len(after_close) == 1, "records committed before the close came again"


async def handled(seen: list[str], n: int) -> bool:
    async def enough() -> bool:
        return len(seen) >= n

    return await wait_until(enough, timeout_s=60)
