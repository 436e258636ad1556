"""Kafka versus RabbitMQ on this machine (`make bench-brokers`), side by side in one run.

The same N messages (same size) are produced durably and then consumed once,
on each broker of the local stack:

- Kafka: topic with 6 partitions, idempotent producer with acks=all (what the
  relay uses), consumer group reading batches and committing offsets per batch;
- RabbitMQ: durable classic queue, persistent messages with publisher confirms
  (what the relay uses), consumer with a prefetch window acking in groups.

For each phase it reports the rate, and, to separate the brokers from the
Python clients (which cost the same kind of CPU on both sides), the CPU time
the *broker process* spent per message and the bytes it wrote to disk per
message. Ends with one summary line. Needs the local stack (`make up`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aio_pika
import psutil
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stackctl.control import build
from stackctl.supervisor import Supervisor
from tests.support import kafka
from tests.support.rabbit import admin_amqp_url

PARTITIONS = 6
WINDOW = 1000  # RabbitMQ publishes in flight awaiting confirms; also the prefetch


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


# -- Kafka ----------------------------------------------------------------------
async def kafka_phases(
    bootstrap: str, pid: int, bodies: list[bytes], keys: list[bytes]
) -> tuple[Phase, Phase]:
    topic = f"bench-brokers-{uuid.uuid4().hex[:6]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()

    async def produce() -> None:
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

    async def consume() -> None:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"{topic}-group",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        try:
            seen = 0
            while seen < len(bodies):
                batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                seen += sum(len(records) for records in batch.values())
                await consumer.commit()
        finally:
            await consumer.stop()

    produced = await measure("kafka produce", len(bodies), pid, produce)
    consumed = await measure("kafka consume", len(bodies), pid, consume)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()
    return produced, consumed


# -- RabbitMQ -------------------------------------------------------------------
async def rabbitmq_phases(url: str, pid: int, bodies: list[bytes]) -> tuple[Phase, Phase]:
    queue_name = f"bench-brokers-{uuid.uuid4().hex[:6]}"
    connection = await aio_pika.connect(url, timeout=10)
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "classic"}
        )

        async def produce() -> None:
            exchange = channel.default_exchange
            for first in range(0, len(bodies), WINDOW):
                await asyncio.gather(
                    *(
                        exchange.publish(
                            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                            routing_key=queue_name,
                        )
                        for body in bodies[first : first + WINDOW]
                    )
                )

        async def consume() -> None:
            consumer_channel = await connection.channel()
            await consumer_channel.set_qos(prefetch_count=WINDOW)
            source = await consumer_channel.get_queue(queue_name)
            seen = 0
            async with source.iterator() as messages:
                async for message in messages:
                    seen += 1
                    if seen % (WINDOW // 2) == 0 or seen == len(bodies):
                        await message.ack(multiple=True)
                    if seen == len(bodies):
                        break
            await consumer_channel.close()

        produced = await measure("rabbitmq produce", len(bodies), pid, produce)
        consumed = await measure("rabbitmq consume", len(bodies), pid, consume)
        await queue.delete(if_unused=False, if_empty=False)
        return produced, consumed
    finally:
        await connection.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=350, help="bytes per message body")
    args = parser.parse_args()

    stack, _ = build()
    supervisor = Supervisor(stack.s)
    kafka_pid = supervisor.info("kafka").pid
    rabbit_pid = supervisor.info("rabbitmq").pid
    bodies = [os.urandom(args.size // 2).hex().encode() for _ in range(args.messages)]
    keys = [f"order-{i % 1000}".encode() for i in range(args.messages)]
    print(f"{args.messages} messages of {args.size} bytes, produced durably then consumed once")

    k_produce, k_consume = await kafka_phases(stack.kafka_bootstrap, kafka_pid, bodies, keys)
    r_produce, r_consume = await rabbitmq_phases(admin_amqp_url(stack), rabbit_pid, bodies)
    for phase in (k_produce, r_produce, k_consume, r_consume):
        print(phase.line())

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
        f"rabbitmq_broker_cpu_us_per_msg={cpu_us(r_produce, r_consume):.1f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
