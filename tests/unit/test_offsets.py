"""messaging.offsets without Kafka: what is committed, when, and what is kept
when a commit fails (tests/integration/test_offsets.py runs it on Kafka)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaConnectionError

from messaging.offsets import DeferredCommits

TOPIC = "orders"
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


class StubConsumer:
    """The two calls DeferredCommits makes of an AIOKafkaConsumer."""

    def __init__(self) -> None:
        self.owned = {P0, P1}
        self.commits: list[dict[TopicPartition, int]] = []
        self.failing = False

    def assignment(self) -> set[TopicPartition]:
        return set(self.owned)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.failing:
            raise KafkaConnectionError("coordinator gone")
        self.commits.append(dict(offsets))


def record(partition: int, offset: int) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(TOPIC, partition, offset, 0, 0, None, b"", None, 0, 0, ())


def handle(commits: DeferredCommits, consumer: StubConsumer, *at: tuple[int, int]) -> None:
    for partition, offset in at:
        commits.handled(consumer, record(partition, offset))


async def test_each_partition_commits_the_offset_after_its_last_handled_record() -> None:
    commits, consumer = DeferredCommits(interval_s=0.05), StubConsumer()
    handle(commits, consumer, (0, 10), (1, 3), (0, 11), (0, 12), (1, 4))
    assert consumer.commits == []
    await asyncio.sleep(0.2)
    assert consumer.commits == [{P0: 13, P1: 5}]
    await commits.close()


async def test_many_waiting_records_commit_before_the_interval() -> None:
    commits, consumer = DeferredCommits(interval_s=60, max_pending=3), StubConsumer()
    handle(commits, consumer, (0, 1), (0, 2))
    await asyncio.sleep(0.05)
    assert consumer.commits == []
    handle(commits, consumer, (0, 3))
    await asyncio.sleep(0.05)
    assert consumer.commits == [{P0: 4}]
    await commits.close()


async def test_a_failed_commit_is_kept_and_a_newer_offset_replaces_it() -> None:
    commits, consumer = DeferredCommits(interval_s=60), StubConsumer()
    consumer.failing = True
    handle(commits, consumer, (0, 5), (1, 7))
    await commits.flush()
    assert consumer.commits == []
    consumer.failing = False
    handle(commits, consumer, (0, 6))
    await commits.flush()
    assert consumer.commits == [{P0: 7, P1: 8}]
    await commits.close()


async def test_partitions_no_longer_owned_are_left_to_their_new_owner() -> None:
    commits, consumer = DeferredCommits(interval_s=60), StubConsumer()
    handle(commits, consumer, (0, 5), (1, 7))
    consumer.owned = {P1}
    await commits.flush()
    assert consumer.commits == [{P1: 8}]
    await commits.close()


async def test_a_rebalance_commits_what_was_handled_first() -> None:
    commits, consumer = DeferredCommits(interval_s=60), StubConsumer()
    handle(commits, consumer, (1, 2))
    await commits.on_partitions_revoked({P0, P1})
    assert consumer.commits == [{P1: 3}]
    await commits.close()


async def test_close_commits_and_stops_the_task() -> None:
    commits, consumer = DeferredCommits(interval_s=60), StubConsumer()
    handle(commits, consumer, (0, 0))
    await commits.close()
    assert consumer.commits == [{P0: 1}]
    assert [t for t in asyncio.all_tasks() if t.get_name() == "kafka-commits"] == []


async def test_after_close_nothing_is_recorded_and_no_task_starts() -> None:
    commits, consumer = DeferredCommits(interval_s=0.01), StubConsumer()
    await commits.close()
    handle(commits, consumer, (0, 3))
    await asyncio.sleep(0.05)
    assert consumer.commits == []
    assert [t for t in asyncio.all_tasks() if t.get_name() == "kafka-commits"] == []
