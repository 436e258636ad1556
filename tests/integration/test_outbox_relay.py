"""The outbox relay against real PostgreSQL, Kafka and RabbitMQ: real relay
processes on a table of their own, killed and signalled for real."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import asyncpg
import pytest

from catalogue.topology import COMMANDS_EXCHANGE
from messaging.envelope import KafkaTopic, OutgoingMessage, RabbitRoute
from stackctl.components import LocalStack
from tests.support import kafka
from tests.support.metrics import metric
from tests.support.outbox import (
    OutboxFixture,
    RelayProcess,
    probe_message,
    sequences_by_key,
)
from tests.support.rabbit import admin_amqp_url


@pytest.fixture
def outbox(local_stack: LocalStack) -> Iterator[OutboxFixture]:
    box = OutboxFixture(local_stack, f"outbox_it_{uuid.uuid4().hex[:8]}")
    box.create()
    yield box
    box.drop()


@pytest.fixture
async def topic(local_stack: LocalStack) -> str:
    return await kafka.create_topic(local_stack.kafka_bootstrap)


class Relays:
    def __init__(self, stack: LocalStack, table: str, log_dir: Path) -> None:
        self.stack, self.table, self.log_dir = stack, table, log_dir
        self.started: list[RelayProcess] = []

    async def start(self, **settings: str) -> RelayProcess:
        relay = RelayProcess(self.stack, self.table, self.log_dir, **settings).start()
        self.started.append(relay)
        await relay.wait_ready()
        return relay


@pytest.fixture
async def relays(
    local_stack: LocalStack, outbox: OutboxFixture, tmp_path: Path
) -> AsyncIterator[Relays]:
    group = Relays(local_stack, outbox.name, tmp_path)
    yield group
    for relay in group.started:
        relay.stop()


def assert_in_order_per_key(records: list[kafka.Record]) -> None:
    """Per key, the first copies arrive in the order the rows were written, and
    each key stayed on one partition."""
    unique = kafka.first_occurrences(records)
    for key, seqs in sequences_by_key([r.value for r in unique]).items():
        assert seqs == sorted(seqs), f"key {key} out of order: {seqs}"
    partitions: dict[str, set[int]] = {}
    for r in records:
        partitions.setdefault(r.key, set()).add(r.partition)
    assert all(len(p) == 1 for p in partitions.values())


def insert_keyed(outbox: OutboxFixture, topic: str, total: int, keys: int) -> list[OutgoingMessage]:
    """`total` probe messages into the outbox, round-robin over `keys` ordering
    keys, each key's numbered from 0."""
    messages = [probe_message(KafkaTopic(topic), f"k{i % keys}", i // keys) for i in range(total)]
    outbox.insert(messages)
    return messages


async def test_relay_sigkilled_mid_drain_loses_nothing_and_redelivers_with_same_ids(
    local_stack: LocalStack, outbox: OutboxFixture, topic: str, relays: Relays
) -> None:
    messages = insert_keyed(outbox, topic, 10_000, keys=200)
    victim = await relays.start(relay_batch_size="200")
    sent = await outbox.wait_until("state = 'sent'", 3_000, timeout_s=60)
    victim.signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL
    assert sent < 10_000, "the relay must be killed in the middle of draining"

    await relays.start(relay_batch_size="500")
    assert await outbox.wait_until("state = 'sent'", 10_000, timeout_s=120) == 10_000

    records = await kafka.read(local_stack.kafka_bootstrap, topic, until=10_000)
    written = {str(m.id) for m in messages}
    assert {r.message_id for r in records} == written, "every message arrived"
    # Redeliveries, if any, carry the id of the message they repeat.
    assert len(records) - len(written) == len(records) - len(kafka.first_occurrences(records))
    assert_in_order_per_key(records)


async def test_two_relays_on_one_table_keep_per_key_order_while_one_dies(
    local_stack: LocalStack, outbox: OutboxFixture, topic: str, relays: Relays
) -> None:
    keys, per_key = 50, 60
    first = await relays.start(relay_batch_size="50")
    second = await relays.start(relay_batch_size="50")
    destination = KafkaTopic(topic)
    for seq in range(per_key):
        # Load arrives while both relays drain: one transaction per round.
        outbox.insert(probe_message(destination, f"k{k}", seq) for k in range(keys))
        if seq == per_key // 2:
            first.signal(signal.SIGKILL)
        await asyncio.sleep(0.01)
    first.wait()
    assert (
        await outbox.wait_until("state = 'sent'", keys * per_key, timeout_s=120) == keys * per_key
    )
    samples = await second.metrics()
    assert metric(samples, "outbox_messages_total", outcome="sent") > 0

    records = await kafka.read(local_stack.kafka_bootstrap, topic, until=keys * per_key)
    unique = kafka.first_occurrences(records)
    assert len(unique) == keys * per_key
    assert_in_order_per_key(records)
    assert all(
        seqs == list(range(per_key))
        for seqs in sequences_by_key([r.value for r in unique]).values()
    )


async def test_sigterm_finishes_the_batch_in_flight_and_exits_cleanly(
    local_stack: LocalStack, outbox: OutboxFixture, topic: str, relays: Relays
) -> None:
    messages = insert_keyed(outbox, topic, 5_000, keys=100)
    relay = await relays.start(relay_batch_size="100")
    await outbox.wait_until("state = 'sent'", 500)
    relay.signal(signal.SIGTERM)
    assert relay.wait(timeout_s=30) == 0, relay.output()
    assert "outbox relay stopped" in relay.output()

    await relays.start()
    assert await outbox.wait_until("state = 'sent'", 5_000) == 5_000
    records = await kafka.read(local_stack.kafka_bootstrap, topic, until=5_000)
    # A graceful stop marks what it published: nothing is sent twice.
    assert sorted(r.message_id for r in records) == sorted(str(m.id) for m in messages)


async def test_unroutable_command_fails_into_the_log_and_the_cli_redrives_it(
    local_stack: LocalStack, outbox: OutboxFixture, relays: Relays
) -> None:
    routing_key = f"it.nowhere.{uuid.uuid4().hex[:6]}"
    message = probe_message(RabbitRoute(COMMANDS_EXCHANGE, routing_key), "k1", 0)
    outbox.insert([message])
    relay = await relays.start(relay_max_attempts="3", relay_backoff_base_s="0.1")
    assert await outbox.wait_until("state = 'failed'", 1, timeout_s=30) == 1
    samples = await relay.metrics()
    assert (
        metric(samples, "outbox_messages_total", outcome="retry", destination_kind="rabbitmq") == 2
    )
    assert metric(samples, "outbox_messages_total", outcome="failed") == 1

    listing = await relay_cli(relay, "failures", "list")
    assert str(message.id) in listing
    assert "NO_ROUTE" in listing

    # The operator fixes the topology, then re-drives the message.
    connection = await aio_pika.connect(admin_amqp_url(local_stack))
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(routing_key, auto_delete=True)
        await queue.bind(COMMANDS_EXCHANGE, routing_key)
        assert str(message.id) in await relay_cli(relay, "failures", "retry", str(message.id))
        incoming = await queue.get(timeout=15, fail=False)
        for _ in range(50):
            if incoming is not None:
                break
            await asyncio.sleep(0.2)
            incoming = await queue.get(fail=False)
        assert incoming is not None
        assert incoming.message_id == str(message.id)
        assert incoming.headers["ce-type"] == "test.probe"
        assert incoming.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        await incoming.ack()
    assert await outbox.count("state = 'sent'") == 1
    assert "not in the failure log" in await relay_cli(
        relay, "failures", "retry", str(uuid.uuid4())
    )


async def test_a_failing_key_blocks_only_itself_and_best_effort_messages_are_dropped(
    local_stack: LocalStack, outbox: OutboxFixture, topic: str, relays: Relays
) -> None:
    missing = KafkaTopic(f"it-missing-{uuid.uuid4().hex[:6]}")
    good = KafkaTopic(topic)
    outbox.insert(
        [
            probe_message(missing, "stuck", 0),  # will fail: the topic does not exist
            probe_message(missing, "lossy", 0, best_effort=True),
            probe_message(missing, "lossy", 1, best_effort=True),
        ]
    )
    outbox.insert(probe_message(good, f"k{i}", 0) for i in range(20))
    relay = await relays.start(
        relay_max_attempts="50",
        relay_backoff_base_s="0.2",
        relay_backoff_max_s="1",
        relay_stats_interval_s="0.5",
    )
    assert await outbox.wait_until("state = 'sent'", 20) == 20, "other keys flow"
    assert await outbox.wait_until("state = 'dropped'", 2) == 2, "best effort dropped"
    # A later message of the failing key waits behind it, never attempted.
    outbox.insert([probe_message(missing, "stuck", 1)])
    await asyncio.sleep(2)
    assert await outbox.count("ordering_key = 'stuck' and attempts > 0 and state = 'pending'") == 1
    assert await outbox.count("ordering_key = 'stuck' and attempts = 0 and state = 'pending'") == 1
    samples = await relay.metrics()
    assert metric(samples, "outbox_blocked_messages", destination=missing.topic) == 1
    assert metric(samples, "outbox_messages_total", outcome="dropped") == 2
    assert "unknown topic" in (await outbox_errors(outbox))[0]


async def test_sent_rows_are_purged_after_the_retention_period(
    local_stack: LocalStack, outbox: OutboxFixture, topic: str, relays: Relays
) -> None:
    outbox.insert(probe_message(KafkaTopic(topic), f"k{i}", 0) for i in range(100))
    await relays.start(relay_retention_s="1", relay_stats_interval_s="0.5")
    assert await outbox.wait_until("state = 'sent'", 100) == 100
    for _ in range(100):
        if await outbox.count() == 0:
            break
        await asyncio.sleep(0.1)
    assert await outbox.count() == 0


# -- helpers ------------------------------------------------------------------


async def relay_cli(relay: RelayProcess, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("outbox-relay")),
        *args,
        env=relay.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return out.decode()


async def outbox_errors(outbox: OutboxFixture) -> list[str]:
    conn = await asyncpg.connect(outbox.dsn)
    try:
        return [
            r["last_error"]
            for r in await conn.fetch(
                f"select last_error from {outbox.name} where last_error is not null order by id"
            )
        ]
    finally:
        await conn.close()


async def test_a_malformed_row_goes_to_the_failure_log_and_the_relay_keeps_going(
    local_stack: LocalStack, outbox: OutboxFixture, topic: str, relays: Relays
) -> None:
    broken = probe_message(KafkaTopic(topic), "broken", 0)
    outbox.insert([broken])
    conn = await asyncpg.connect(outbox.dsn)
    try:
        await conn.execute(
            f"update {outbox.name} set headers = '{{}}' where message_id = $1", broken.id
        )
    finally:
        await conn.close()
    outbox.insert(probe_message(KafkaTopic(topic), f"k{i}", 0) for i in range(10))
    await relays.start()
    assert await outbox.wait_until("state = 'sent'", 10) == 10
    assert await outbox.wait_until("state = 'failed'", 1) == 1
    assert "malformed outbox row" in (await outbox_errors(outbox))[0]
