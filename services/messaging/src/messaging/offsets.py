"""When a Kafka consumer commits: after the effect, a few offsets at a time.

FastStream's Kafka subscriber with `AckPolicy.NACK_ON_ERROR` commits after
every record it handled: an OffsetCommit round trip to the group coordinator
and an append to `__consumer_offsets` per record, which cost point-service
and Kafka a large part of their CPU per order (bench/README.md, issue 14).
With `DeferredCommits` as the subscriber's parser and rebalance listener, an
ack only records the next offset of its record's partition; a background task
commits what was recorded every `interval_s`, at once when `max_pending`
records wait, before the consumer's partitions are revoked, and when the
process shuts down (`flush`).

The guarantees stay:
- **at-least-once**: only offsets of records whose handling finished are
  committed; FastStream handles a subscriber's records one at a time, so a
  partition's recorded offset only grows. A nack rewinds the consumer to the
  failed record, which was never recorded;
- **redelivery is bounded**: a crash redelivers at most the records handled in
  the last interval (plus the one in flight, as before); the inbox absorbs
  them as duplicates;
- **per-key order**: unchanged, commits do not reorder handling.

Written here because no library fits: aiokafka's auto-commit commits the
*fetched* position, which includes the record being handled (a crash would
skip it), and it has no offset store like librdkafka's
`enable.auto.offset.store=false` or Spring Kafka's `AckMode.COUNT_TIME`.
`interval_s=0` commits after every record, as FastStream does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from faststream.kafka.message import KafkaAckableMessage
from faststream.message import StreamMessage
from prometheus_client import Counter

from messaging.consumer import Parse, parse_kafka_record

log = logging.getLogger(__name__)

OFFSET_COMMITS = Counter(
    "kafka_offset_commits",
    "OffsetCommit requests of the process's consumers, by outcome.",
    ["outcome"],
)
for _outcome in ("ok", "failed"):
    OFFSET_COMMITS.labels(_outcome)


class _Pending:
    """One consumer's recorded offsets and the task that commits them."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.offsets: dict[TopicPartition, int] = {}
        self.records = 0
        self.wake = asyncio.Event()
        self.lock = asyncio.Lock()
        self.task: asyncio.Task[None] | None = None


class DeferredCommits(ConsumerRebalanceListener):  # type: ignore[misc]
    """A Kafka subscriber's parser (`parse`) and rebalance listener: acks
    record offsets, which are committed a few at a time."""

    def __init__(self, interval_s: float = 0.2, max_pending: int = 500) -> None:
        self.interval_s = interval_s
        self.max_pending = max_pending
        self._consumers: weakref.WeakKeyDictionary[AIOKafkaConsumer, _Pending] = (
            weakref.WeakKeyDictionary()
        )
        self._closed = False

    # -- FastStream's side ------------------------------------------------------
    async def parse(self, record: ConsumerRecord[Any, Any], parse: Parse) -> StreamMessage[Any]:
        """The subscriber's parser: messaging.consumer's, then the message's
        acknowledgement goes through `_RecordAck` instead of a commit."""
        message = await parse_kafka_record(record, parse)
        consumer = getattr(message, "consumer", None)
        if (
            self.interval_s > 0
            and isinstance(message, KafkaAckableMessage)
            and isinstance(consumer, AIOKafkaConsumer)
        ):
            message.consumer = _RecordAck(self, consumer, record)
        return message

    def handled(self, consumer: AIOKafkaConsumer, record: ConsumerRecord[Any, Any]) -> None:
        if self._closed:
            # A record handled while the process stops: redelivered after the
            # restart (the inbox absorbs it), as it would be after a crash.
            return
        pending = self._consumers.get(consumer)
        if pending is None:
            pending = self._consumers[consumer] = _Pending(consumer)
        if pending.task is None or pending.task.done():
            pending.task = asyncio.create_task(self._commit_every(pending), name="kafka-commits")
        pending.offsets[TopicPartition(record.topic, record.partition)] = record.offset + 1
        pending.records += 1
        if pending.records >= self.max_pending:
            pending.wake.set()

    # -- committing ------------------------------------------------------------
    async def _commit_every(self, pending: _Pending) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pending.wake.wait(), self.interval_s)
            pending.wake.clear()
            await self._commit(pending)

    async def _commit(self, pending: _Pending) -> None:
        async with pending.lock:
            offsets, pending.offsets, pending.records = pending.offsets, {}, 0
            # Partitions revoked meanwhile are their new owner's to commit.
            owned = pending.consumer.assignment()
            offsets = {tp: offset for tp, offset in offsets.items() if tp in owned}
            if not offsets:
                return
            try:
                await pending.consumer.commit(offsets)
            except KafkaError as exc:
                # Kept for the next commit unless a newer offset was recorded
                # meanwhile; a restart before then redelivers, the inbox absorbs.
                OFFSET_COMMITS.labels("failed").inc()
                log.warning("offset commit failed (%r); kept for the next one", exc)
                pending.offsets = {**offsets, **pending.offsets}
                return
            OFFSET_COMMITS.labels("ok").inc()

    async def flush(self) -> None:
        """Commit every recorded offset now."""
        for pending in list(self._consumers.values()):
            await self._commit(pending)

    async def close(self) -> None:
        """At shutdown, before the brokers stop: commit, and stop the tasks. A
        record still being handled then is redelivered after the restart."""
        self._closed = True
        await self.flush()
        for pending in list(self._consumers.values()):
            if pending.task is not None:
                pending.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending.task

    # -- rebalance -------------------------------------------------------------
    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before a rebalance: what was handled is committed while this
        consumer still owns its partitions."""
        await self.flush()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None


class _RecordAck:
    """What FastStream's `KafkaAckableMessage` calls on its consumer: `commit`
    on ack (here: record the offset), `seek` on nack (the consumer's own)."""

    def __init__(
        self, commits: DeferredCommits, consumer: AIOKafkaConsumer, record: ConsumerRecord[Any, Any]
    ) -> None:
        self._commits = commits
        self._consumer = consumer
        self._record = record

    async def commit(self) -> None:
        self._commits.handled(self._consumer, self._record)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._consumer.seek(partition, offset)
