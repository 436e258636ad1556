"""Kafka, RabbitMQ and Redis pub/sub on this machine (`make bench-brokers`), in one run.

The same N messages (same size) go through each broker of the local stack:

- Kafka: topic with 6 partitions, idempotent producer with acks=all (what the
  relay uses), consumer group reading batches and committing offsets per batch;
- RabbitMQ: durable classic queue, persistent messages with publisher confirms
  (what the relay uses), consumer with a prefetch window acking in groups;
- Redis pub/sub: PUBLISH in pipelined windows to one channel, one subscriber
  connected meanwhile (pub/sub keeps nothing, so there is no produce-then-consume:
  one phase from the first PUBLISH to the last message received; the publisher
  keeps at most AHEAD messages ahead of the subscriber, so this phase measures
  delivery, not loss).

For each phase it reports the rate, and, to separate the brokers from the
Python clients (which cost the same kind of CPU on every side), the CPU time
the *broker process* spent per message and the bytes it wrote to disk per
message.

Then what a consumer gets of N messages in two situations, counted:

- **away**: the consumer was there before (Kafka: a group with committed
  offsets; RabbitMQ: its durable queue; Redis: a subscriber of the channel),
  is gone while the N messages are published, and comes back;
- **slow**: the consumer sleeps SLOW_S after each message while the N messages
  are published as fast as the publisher can, then reads as fast as it can. It
  shares the publisher's process and event loop, so while the publisher runs it
  reads even less than one message per SLOW_S (the count is printed). Redis
  disconnects a subscriber whose output buffer passes
  `client-output-buffer-limit pubsub` (the local stack: 8mb hard, 2mb for 10 s);
  redis-py then reconnects and subscribes again, so the subscriber sees a gap,
  not an error.

Ends with one summary line. Needs the local stack (`make up`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import aio_pika
import psutil
import redis.asyncio as redis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stackctl.components import LocalStack
from stackctl.control import build
from stackctl.supervisor import Supervisor
from tests.support import kafka
from tests.support.rabbit import admin_amqp_url

PARTITIONS = 6
WINDOW = 1000  # RabbitMQ publishes in flight awaiting confirms; also the prefetch; Redis pipeline
AHEAD = 10 * WINDOW  # Redis throughput phase: most messages published and not yet received
SLOW_S = 0.001  # the slow consumer's time per message while the publisher runs
IDLE_S = 10.0  # a consumer stops after this long without a message
END = b"end"  # Redis: the marker published last; a subscriber still there stops at it
SLOW_NAME = "bench-brokers-slow-subscriber"


@dataclass(frozen=True)
class Phase:
    name: str
    messages: int
    wall_s: float
    broker_cpu_s: float
    broker_written_bytes: int
    client_cpu_s: float

    @property
    def rate(self) -> float:
        return self.messages / self.wall_s

    def line(self) -> str:
        per = 1e6 / self.messages
        return (
            f"{self.name:<18} {self.rate:9.0f} msgs/s"
            f"   broker CPU {self.broker_cpu_s * per:6.1f} µs/msg"
            f"   client CPU {self.client_cpu_s * per:6.1f} µs/msg"
            f"   broker wrote {self.broker_written_bytes / self.messages:7.0f} B/msg"
        )


@dataclass(frozen=True)
class Delivery:
    """What one consumer received of the messages published in one situation."""

    broker: str
    situation: str  # "away" or "slow"
    published: int
    received: int
    how: str

    @property
    def lost(self) -> int:
        return self.published - self.received

    def line(self) -> str:
        return (
            f"{self.broker:<9} {self.situation:<5} published {self.published:7d}"
            f"   received {self.received:7d}   lost {self.lost:7d}   {self.how}"
        )


def process_tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def broker_usage(pid: int) -> tuple[float, int]:
    cpu, written = 0.0, 0
    for p in process_tree(pid):
        times = p.cpu_times()
        cpu += times.user + times.system
        written += p.io_counters().write_bytes
    return cpu, written


async def measure(
    name: str, messages: int, broker_pid: int, run: Callable[[], Awaitable[None]]
) -> Phase:
    cpu0, written0 = broker_usage(broker_pid)
    client0 = time.process_time()
    started = time.perf_counter()
    await run()
    wall = time.perf_counter() - started
    cpu1, written1 = broker_usage(broker_pid)
    return Phase(
        name, messages, wall, cpu1 - cpu0, written1 - written0, time.process_time() - client0
    )


async def until_set(event: asyncio.Event | None) -> None:
    if event is not None:
        await event.wait()


def still_slow(published: asyncio.Event | None) -> bool:
    return published is not None and not published.is_set()


# -- Kafka ----------------------------------------------------------------------
async def kafka_topic(bootstrap: str, prefix: str) -> str:
    topic = f"{prefix}-{uuid.uuid4().hex[:6]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    return topic


async def kafka_delete(bootstrap: str, *topics: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(list(topics))
    finally:
        await admin.close()


def kafka_consumer(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    # "latest": a consumer without a committed offset would read nothing that
    # was produced before it joined; what it reads here it reads from its offset.
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"{topic}-group",
        auto_offset_reset="latest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )


async def kafka_join(consumer: AIOKafkaConsumer) -> None:
    """Join the group and commit the current end of every partition: from now
    on the group has a position, whether or not a member is connected."""
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=200)
    assigned: set[TopicPartition] = consumer.assignment()
    await consumer.commit({tp: await consumer.position(tp) for tp in assigned})


async def kafka_read(
    consumer: AIOKafkaConsumer, expected: int, slow_until: asyncio.Event | None = None
) -> tuple[int, int]:
    """Read until `expected` records or IDLE_S without one; returns (records,
    records read while `slow_until` was not set), committing after each batch."""
    seen = seen_slow = 0
    last = time.monotonic()
    while seen < expected and time.monotonic() - last < IDLE_S:
        batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
        for records in batch.values():
            for _ in records:
                seen += 1
                if still_slow(slow_until):
                    seen_slow += 1
                    await asyncio.sleep(SLOW_S)
        if batch:
            last = time.monotonic()
            await consumer.commit()
    return seen, seen_slow


async def kafka_phases(
    bootstrap: str, pid: int, bodies: list[bytes], keys: list[bytes]
) -> tuple[Phase, Phase, Delivery, Delivery]:
    async def produce(topic: str) -> None:
        producer = kafka.durable_producer(bootstrap, linger_ms=5)
        await producer.start()
        try:
            futures = [
                await producer.send(topic, value=body, key=key)
                for body, key in zip(bodies, keys, strict=True)
            ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    # Away: the group joins and leaves before anything is produced.
    topic = await kafka_topic(bootstrap, "bench-brokers")
    consumer = kafka_consumer(bootstrap, topic)
    await consumer.start()
    try:
        await kafka_join(consumer)
    finally:
        await consumer.stop()
    received = 0

    async def consume() -> None:
        nonlocal received
        consumer = kafka_consumer(bootstrap, topic)
        await consumer.start()
        try:
            received, _ = await kafka_read(consumer, len(bodies))
        finally:
            await consumer.stop()

    produced = await measure("kafka produce", len(bodies), pid, lambda: produce(topic))
    consumed = await measure("kafka consume", len(bodies), pid, consume)
    away = Delivery(
        "kafka", "away", len(bodies), received, "the group came back and read from its offset"
    )

    # Slow: the group reads one record per SLOW_S while the producer runs.
    slow_topic = await kafka_topic(bootstrap, "bench-brokers-slow")
    consumer = kafka_consumer(bootstrap, slow_topic)
    await consumer.start()
    try:
        await kafka_join(consumer)
        done = asyncio.Event()
        reader = asyncio.create_task(kafka_read(consumer, len(bodies), done))
        await produce(slow_topic)
        done.set()
        received, received_slow = await reader
    finally:
        await consumer.stop()
    slow = Delivery(
        "kafka",
        "slow",
        len(bodies),
        received,
        f"{received_slow} while the producer ran, the rest from the log afterwards",
    )
    await kafka_delete(bootstrap, topic, slow_topic)
    return produced, consumed, away, slow


# -- RabbitMQ -------------------------------------------------------------------
async def rabbitmq_read(
    connection: aio_pika.abc.AbstractConnection,
    queue_name: str,
    expected: int,
    slow_until: asyncio.Event | None = None,
) -> tuple[int, int]:
    """Consume until `expected` messages or IDLE_S without one; returns
    (messages, messages consumed while `slow_until` was not set)."""
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=WINDOW)
    source = await channel.get_queue(queue_name)
    seen = seen_slow = 0
    with contextlib.suppress(asyncio.TimeoutError):
        async with source.iterator(timeout=IDLE_S) as messages:
            async for message in messages:
                seen += 1
                if still_slow(slow_until):
                    seen_slow += 1
                    await asyncio.sleep(SLOW_S)
                if seen % (WINDOW // 2) == 0 or seen == expected:
                    await message.ack(multiple=True)
                if seen == expected:
                    break
    await channel.close()
    return seen, seen_slow


async def rabbitmq_phases(
    url: str, pid: int, bodies: list[bytes]
) -> tuple[Phase, Phase, Delivery, Delivery]:
    queue_name = f"bench-brokers-{uuid.uuid4().hex[:6]}"
    slow_name = f"{queue_name}-slow"
    connection = await aio_pika.connect(url, timeout=10)
    try:
        channel = await connection.channel(publisher_confirms=True)
        # The queues exist before anything is published, as the topology's do.
        queues = [
            await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "classic"})
            for name in (queue_name, slow_name)
        ]

        async def produce(routing_key: str) -> None:
            exchange = channel.default_exchange
            for first in range(0, len(bodies), WINDOW):
                await asyncio.gather(
                    *(
                        exchange.publish(
                            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                            routing_key=routing_key,
                        )
                        for body in bodies[first : first + WINDOW]
                    )
                )

        received = 0

        async def consume() -> None:
            nonlocal received
            received, _ = await rabbitmq_read(connection, queue_name, len(bodies))

        produced = await measure("rabbitmq produce", len(bodies), pid, lambda: produce(queue_name))
        consumed = await measure("rabbitmq consume", len(bodies), pid, consume)
        away = Delivery(
            "rabbitmq", "away", len(bodies), received, "the durable queue kept them until it came"
        )

        done = asyncio.Event()
        reader = asyncio.create_task(rabbitmq_read(connection, slow_name, len(bodies), done))
        await produce(slow_name)
        done.set()
        received, received_slow = await reader
        slow = Delivery(
            "rabbitmq",
            "slow",
            len(bodies),
            received,
            f"{received_slow} while the producer ran, the rest from the queue afterwards",
        )
        for queue in queues:
            await queue.delete(if_unused=False, if_empty=False)
        return produced, consumed, away, slow
    finally:
        await connection.close()


# -- Redis pub/sub ----------------------------------------------------------------
class ConnectCounter:
    """Counts the connects of a subscriber's connection (redis-py reconnects and
    subscribes again by itself after the server drops it)."""

    def __init__(self) -> None:
        self.count = 0

    async def connected(self, _connection: object) -> None:
        self.count += 1


def redis_client(stack: LocalStack, name: str | None = None) -> redis.Redis:
    return redis.Redis(
        host=stack.s.host,
        port=stack.s.redis_port,
        password=stack.creds.redis_password,
        client_name=name,
    )


async def subscribed(client: redis.Redis, channel: str) -> redis.client.PubSub:
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    confirmation = await pubsub.get_message(timeout=5)
    if confirmation is None or confirmation["type"] != "subscribe":
        raise RuntimeError(f"no subscription confirmed on {channel}: {confirmation!r}")
    return pubsub


async def unsubscribed(pubsub: redis.client.PubSub) -> None:
    await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py


async def publish(publisher: redis.Redis, channel: str, bodies: list[bytes]) -> int:
    """Publish in one pipeline; returns the receivers PUBLISH reported, summed."""
    pipe = publisher.pipeline(transaction=False)
    for body in bodies:
        pipe.publish(channel, body)
    return sum(cast("list[int]", await pipe.execute()))


async def next_message(pubsub: redis.client.PubSub) -> bytes | None:
    """The next published message's body, or None after IDLE_S without one
    (subscribe confirmations, as after a reconnect, are skipped)."""
    deadline = time.monotonic() + IDLE_S
    while (left := deadline - time.monotonic()) > 0:
        message: dict[str, Any] | None = await pubsub.get_message(timeout=left)
        if message is not None and message["type"] == "message":
            return cast("bytes", message["data"])
    return None


async def redis_phases(
    stack: LocalStack, pid: int, bodies: list[bytes]
) -> tuple[Phase, Phase, Delivery, Delivery]:
    channel = f"bench-brokers-{uuid.uuid4().hex[:6]}"
    publisher = redis_client(stack)
    try:
        pubsub_phase, out_of_order = await redis_throughput(stack, publisher, channel, pid, bodies)
        if out_of_order:
            print(f"redis: {out_of_order} messages arrived out of publish order")
        nobody, away = await redis_away(stack, publisher, channel, pid, bodies)
        slow = await redis_slow(stack, publisher, channel, bodies)
    finally:
        await publisher.aclose()
    return pubsub_phase, nobody, away, slow


async def redis_throughput(
    stack: LocalStack, publisher: redis.Redis, channel: str, pid: int, bodies: list[bytes]
) -> tuple[Phase, int]:
    subscriber = redis_client(stack)
    pubsub = await subscribed(subscriber, channel)
    received = out_of_order = 0

    async def subscribe() -> None:
        nonlocal received, out_of_order
        while received < len(bodies) and (body := await next_message(pubsub)) is not None:
            out_of_order += body != bodies[received]
            received += 1

    async def run() -> None:
        reader = asyncio.create_task(subscribe())
        for first in range(0, len(bodies), WINDOW):
            while first - received > AHEAD and not reader.done():
                await asyncio.sleep(0.001)
            await publish(publisher, channel, bodies[first : first + WINDOW])
        await reader

    try:
        phase = await measure("redis pub→sub", len(bodies), pid, run)
    finally:
        await unsubscribed(pubsub)
        await subscriber.aclose()
    if received != len(bodies):
        raise RuntimeError(f"redis: the subscriber received {received} of {len(bodies)}")
    return phase, out_of_order


async def redis_away(
    stack: LocalStack, publisher: redis.Redis, channel: str, pid: int, bodies: list[bytes]
) -> tuple[Phase, Delivery]:
    subscriber = redis_client(stack)
    try:
        pubsub = await subscribed(subscriber, channel)
        await unsubscribed(pubsub)  # the subscriber leaves
        receivers = 0

        async def run() -> None:
            nonlocal receivers
            for first in range(0, len(bodies), WINDOW):
                receivers += await publish(publisher, channel, bodies[first : first + WINDOW])

        phase = await measure("redis pub, nobody", len(bodies), pid, run)
        pubsub = await subscribed(subscriber, channel)  # and comes back
        await publish(publisher, channel, [END])
        received = 0
        while await next_message(pubsub) not in (END, None):
            received += 1
        await unsubscribed(pubsub)
    finally:
        await subscriber.aclose()
    return phase, Delivery(
        "redis",
        "away",
        len(bodies),
        received,
        f"PUBLISH reported {receivers} receivers in all; nothing kept for later",
    )


async def redis_slow(
    stack: LocalStack, publisher: redis.Redis, channel: str, bodies: list[bytes]
) -> Delivery:
    subscriber = redis_client(stack, SLOW_NAME)
    pubsub = await subscribed(subscriber, channel)
    connects = ConnectCounter()
    # Set by subscribe(); redis-py declares the attribute as None only, and the
    # method is untyped.
    connection = cast("Any", pubsub.connection)
    connection.register_connect_callback(connects.connected)
    done = asyncio.Event()
    received = received_slow = 0
    max_buffered = 0
    failure = ""

    async def watch() -> None:
        """The subscriber's output buffer on the server (CLIENT LIST omem)."""
        nonlocal max_buffered
        while not done.is_set():
            clients: list[dict[str, Any]] = await publisher.client_list(_type="pubsub")
            for c in clients:
                if c.get("name") == SLOW_NAME:
                    max_buffered = max(max_buffered, int(c["omem"]))
            await asyncio.sleep(0.05)

    async def read() -> None:
        nonlocal received, received_slow, failure
        try:
            while await next_message(pubsub) not in (END, None):
                received += 1
                if still_slow(done):
                    received_slow += 1
                    await asyncio.sleep(SLOW_S)
        except redis.ConnectionError as exc:  # reconnecting failed too
            failure = f", then {exc!r}"

    watcher = asyncio.create_task(watch())
    reader = asyncio.create_task(read())
    receivers = 0
    for first in range(0, len(bodies), WINDOW):
        receivers += await publish(publisher, channel, bodies[first : first + WINDOW])
    await publish(publisher, channel, [END])
    done.set()
    await reader
    await watcher
    await unsubscribed(pubsub)
    await subscriber.aclose()
    return Delivery(
        "redis",
        "slow",
        len(bodies),
        received,
        f"{received_slow} while the publisher ran; PUBLISH reported {receivers} receivers;"
        f" buffered up to {max_buffered / 2**20:.1f} MiB;"
        f" disconnected {connects.count} time(s){failure}",
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=350, help="bytes per message body")
    args = parser.parse_args()

    stack, _ = build()
    supervisor = Supervisor(stack.s)
    kafka_pid = supervisor.info("kafka").pid
    rabbit_pid = supervisor.info("rabbitmq").pid
    redis_pid = supervisor.info("redis").pid
    bodies = [os.urandom(args.size // 2).hex().encode() for _ in range(args.messages)]
    keys = [f"order-{i % 1000}".encode() for i in range(args.messages)]
    print(
        f"{args.messages} messages of {args.size} bytes: produced durably then consumed once"
        " (Kafka, RabbitMQ), published to one connected subscriber (Redis)"
    )

    k_produce, k_consume, k_away, k_slow = await kafka_phases(
        stack.kafka_bootstrap, kafka_pid, bodies, keys
    )
    r_produce, r_consume, r_away, r_slow = await rabbitmq_phases(
        admin_amqp_url(stack), rabbit_pid, bodies
    )
    redis_pubsub, redis_nobody, redis_away_, redis_slow_ = await redis_phases(
        stack, redis_pid, bodies
    )
    for phase in (k_produce, r_produce, k_consume, r_consume, redis_pubsub, redis_nobody):
        print(phase.line())
    print(
        f"a consumer away while {args.messages} are published (away),"
        f" or sleeping {SLOW_S * 1e3:g} ms per message while they are (slow):"
    )
    for delivery in (k_away, r_away, redis_away_, k_slow, r_slow, redis_slow_):
        print(delivery.line())

    def cpu_us(*phases: Phase) -> float:
        return float(sum(p.broker_cpu_s for p in phases) * 1e6 / args.messages)

    print(
        f"kafka_produce_msgs_per_s={k_produce.rate:.0f} "
        f"rabbitmq_produce_msgs_per_s={r_produce.rate:.0f} "
        f"kafka_consume_msgs_per_s={k_consume.rate:.0f} "
        f"rabbitmq_consume_msgs_per_s={r_consume.rate:.0f} "
        f"ratio_produce={k_produce.rate / r_produce.rate:.2f} "
        f"ratio_consume={k_consume.rate / r_consume.rate:.2f} "
        f"kafka_broker_cpu_us_per_msg={cpu_us(k_produce, k_consume):.1f} "
        f"rabbitmq_broker_cpu_us_per_msg={cpu_us(r_produce, r_consume):.1f} "
        f"redis_pubsub_msgs_per_s={redis_pubsub.rate:.0f} "
        f"redis_broker_cpu_us_per_msg={cpu_us(redis_pubsub):.1f} "
        f"lost_away_kafka={k_away.lost} lost_away_rabbitmq={r_away.lost} "
        f"lost_away_redis={redis_away_.lost} "
        f"lost_slow_kafka={k_slow.lost} lost_slow_rabbitmq={r_slow.lost} "
        f"lost_slow_redis={redis_slow_.lost}"
    )


if __name__ == "__main__":
    asyncio.run(main())
