"""Reading what actually landed on a Kafka topic, with an independent consumer."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: str
    headers: dict[str, str]
    raw: bytes
    timestamp: int = 0  # ms since the epoch (CreateTime: when the producer sent it)

    @property
    def value(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.raw)
        return parsed

    @property
    def message_id(self) -> str:
        return self.headers.get("ce_id") or f"no ce_id at {self.partition}:{self.offset}"


def durable_producer(bootstrap: str, linger_ms: int) -> AIOKafkaProducer:
    """Durable production, as the benchmarks measure it: every in-sync replica
    acknowledges, idempotent, batches of up to 256 KiB."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
    )


async def create_topic(bootstrap: str, partitions: int = 6, prefix: str = "it") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    return name


async def partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    numbers = sorted(p["partition"] for p in described[0]["partitions"])
    assert numbers, f"topic {topic} has no partitions"
    return [TopicPartition(topic, n) for n in numbers]


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    tps = await partitions(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        offsets = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in offsets.items()}


async def read(
    bootstrap: str,
    topic: str,
    *,
    until: int,
    timeout_s: float = 60,
    since: dict[int, int] | None = None,
    settle_s: float = 1.0,
) -> list[Record]:
    """Read records (from `since` offsets, or the beginning) until at least
    `until` have arrived, then keep reading `settle_s` more to catch extras."""
    tps = await partitions(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    records: list[Record] = []
    try:
        consumer.assign(tps)
        for tp in tps:
            if since and tp.partition in since:
                consumer.seek(tp, since[tp.partition])
            else:
                await consumer.seek_to_beginning(tp)
        deadline = asyncio.get_running_loop().time() + timeout_s
        settle_deadline: float | None = None
        while True:
            now = asyncio.get_running_loop().time()
            if len(records) >= until and settle_deadline is None:
                settle_deadline = now + settle_s
            if (settle_deadline and now > settle_deadline) or now > deadline:
                break
            batch = await consumer.getmany(timeout_ms=200)
            for tp, messages in batch.items():
                records += [
                    Record(
                        tp.partition,
                        m.offset,
                        (m.key or b"").decode(errors="replace"),
                        # A topic may hold what the message fuzzer put there:
                        # header values that are not UTF-8, or null.
                        {k: (v or b"").decode(errors="replace") for k, v in m.headers},
                        m.value or b"",
                        m.timestamp,
                    )
                    for m in messages
                ]
    finally:
        await consumer.stop()
    return records


def first_occurrences(records: list[Record]) -> list[Record]:
    """Drop redeliveries (same message id), keeping the first copy: what an
    idempotent consumer applies."""
    seen: set[str] = set()
    unique = []
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        if r.message_id not in seen:
            seen.add(r.message_id)
            unique.append(r)
    return unique


@dataclass(frozen=True)
class GroupMember:
    client_id: str
    host: str
    partitions: list[int]


async def group_members(bootstrap: str, group: str, topic: str) -> tuple[str, list[GroupMember]]:
    """The group's state and its members with the partitions of `topic` each owns,
    as the group coordinator reports them."""
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = (await admin.describe_consumer_groups([group]))[0].to_object()
    finally:
        await admin.close()
    state = described["groups"][0]
    members = []
    for m in state["members"]:
        assignment = (
            ConsumerProtocolMemberAssignment.decode(m["member_assignment"]).assignment
            if m["member_assignment"]
            else []
        )
        owned = sorted(p for t, parts in assignment if t == topic for p in parts)
        members.append(GroupMember(m["client_id"], m["client_host"], owned))
    return str(state["state"]), members
