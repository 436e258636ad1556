"""Kafka is the real broker: partitions, keys, consumer groups, committed
offsets, and durability across a broker restart through the supervisor."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stackctl.components import LocalStack
from stackctl.control import restart
from stackctl.supervisor import Supervisor
from tests.support.kafka import create_topic, partitions

PARTITIONS = 6
KEYS = [f"order-{i}" for i in range(20)]


async def produce(bootstrap: str, topic: str, first: int, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for n in range(first, first + count):
            key = KEYS[n % len(KEYS)]
            await producer.send(topic, key=key.encode(), value=f"{key}:{n}".encode())
        await producer.flush()
    finally:
        await producer.stop()


async def consume(
    bootstrap: str, topic: str, group: str, expected: int
) -> list[tuple[int, str, str]]:
    """Read `expected` records in the group, commit, and return (partition, key, value)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    records: list[tuple[int, str, str]] = []
    try:
        async with asyncio.timeout(60):
            while len(records) < expected:
                batch = await consumer.getmany(timeout_ms=1000)
                for tp, messages in batch.items():
                    records += [(tp.partition, m.key.decode(), m.value.decode()) for m in messages]
        await consumer.commit()
        # Nothing beyond what was produced.
        assert not any((await consumer.getmany(timeout_ms=1500)).values())
    finally:
        await consumer.stop()
    return records


def by_key(records: list[tuple[int, str, str]]) -> dict[str, list[int]]:
    sequence: dict[str, list[int]] = defaultdict(list)
    for _, key, value in records:
        sequence[key].append(int(value.split(":")[1]))
    return sequence


async def test_partitions_keys_groups_and_offsets_survive_a_broker_restart(
    local_stack: LocalStack, supervisor: Supervisor
) -> None:
    bootstrap = local_stack.kafka_bootstrap
    topic = await create_topic(bootstrap, PARTITIONS, "it-kafka")
    group = f"it-group-{uuid.uuid4().hex[:8]}"
    assert len(await partitions(bootstrap, topic)) == PARTITIONS

    await produce(bootstrap, topic, 0, 300)
    first = await consume(bootstrap, topic, group, 300)
    assert len(first) == 300
    # One key, one partition; per key, the order of production.
    partitions_of: dict[str, set[int]] = defaultdict(set)
    for partition, key, _ in first:
        partitions_of[key].add(partition)
    assert all(len(p) == 1 for p in partitions_of.values())
    assert len({p for ps in partitions_of.values() for p in ps}) > 1, "keys spread over partitions"
    assert all(seq == sorted(seq) for seq in by_key(first).values())

    await produce(bootstrap, topic, 300, 50)
    await restart(local_stack, supervisor, "kafka")

    # The group resumes from its committed offsets: only the 50 newer records.
    resumed = await consume(bootstrap, topic, group, 50)
    assert sorted(int(v.split(":")[1]) for _, _, v in resumed) == list(range(300, 350))
    # A new group reads everything that was written before the restart.
    everything = await consume(bootstrap, topic, f"{group}-fresh", 350)
    assert sorted(int(v.split(":")[1]) for _, _, v in everything) == list(range(350))

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        committed = [await consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)]
    finally:
        await consumer.stop()
    assert sum(c or 0 for c in committed) == 350
