"""Evidence for docs/deep-dive.md (`make deep-dive`), read off the running system.

1. Kafka's pull model: the `point-service` consumer group, its members and their
   partitions, before, during and after a second replica joins; the time each
   rebalance took; the group's committed offsets against the log end.
2. RabbitMQ's push model: how the broker knows its consumers (the management
   API's consumer records: channel, tag, prefetch, ack mode) and the queues'
   settings (priorities, dead-lettering).
3. AMQP and STOMP: one queue, a message sent with STOMP's text frames and read
   with AMQP, and the other way round.
4. Request/reply: GET /customers/{id}/summary timed while point-service answers.

Needs the local stack (`make up`). It starts and stops one extra point-service
replica; it stops nothing else.
"""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import tempfile
import time
import uuid
from typing import Any

import aio_pika
import httpx
from aiokafka import AIOKafkaConsumer

from catalogue.topology import (
    NOTIFICATION_SEND,
    ORDERS,
    POINT_BALANCE,
    POINT_COMMANDS,
    POINT_SERVICE_GROUP,
)
from stackctl.components import LocalStack
from stackctl.control import build
from tests.support import kafka
from tests.support.processes import spawn_point_service
from tests.support.rabbit import RabbitAdmin, admin_amqp_url
from tests.support.stomp import Frame, StompClient

GROUP = POINT_SERVICE_GROUP


def heading(text: str) -> None:
    print(f"\n## {text}\n")


async def show_group(stack: LocalStack, label: str) -> list[kafka.GroupMember]:
    state, members = await kafka.group_members(stack.kafka_bootstrap, GROUP, ORDERS.topic)
    print(f"{label}: group {GROUP!r} is {state} with {len(members)} member(s)")
    for m in sorted(members, key=lambda m: m.partitions):
        print(f"    {m.client_id:<40} {m.host:<12} partitions {m.partitions}")
    return members


async def settle(stack: LocalStack, members: int) -> float:
    """Seconds until the group has `members` members owning all partitions."""
    started = time.monotonic()
    while time.monotonic() - started < 90:
        state, found = await kafka.group_members(stack.kafka_bootstrap, GROUP, ORDERS.topic)
        owned = sum(len(m.partitions) for m in found)
        if state == "Stable" and len(found) == members and owned == 6:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise TimeoutError(f"group {GROUP} did not settle with {members} members")


async def lag(stack: LocalStack) -> None:
    ends = await kafka.end_offsets(stack.kafka_bootstrap, ORDERS.topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.kafka_bootstrap, group_id=GROUP)
    await consumer.start()
    try:
        tps = await kafka.partitions(stack.kafka_bootstrap, ORDERS.topic)
        print("partition  committed  log end  lag")
        for tp in tps:
            committed = await consumer.committed(tp) or 0
            end = ends[tp.partition]
            print(f"{tp.partition:>9}  {committed:>9}  {end:>7}  {end - committed:>3}")
    finally:
        await consumer.stop()


async def kafka_pull(stack: LocalStack) -> None:
    heading("Kafka: a consumer group shares the partitions of `orders`")
    await show_group(stack, "before")
    with tempfile.NamedTemporaryFile("wb", suffix=".log") as log:
        replica, _ = spawn_point_service(stack, log)
        try:
            joined = await settle(stack, 2)
            await show_group(stack, f"a second replica started; rebalanced in {joined:.1f}s")
        finally:
            replica.send_signal(signal.SIGTERM)
            replica.wait(30)
        left = await settle(stack, 1)
        await show_group(stack, f"the replica stopped (SIGTERM); rebalanced in {left:.1f}s")
    print()
    await lag(stack)


def consumer_record(c: dict[str, Any]) -> str:
    return (
        f"tag={c['consumer_tag']} channel={c['channel_details']['name']!r} "
        f"prefetch={c['prefetch_count']} ack_required={c['ack_required']} "
        f"exclusive={c['exclusive']}"
    )


async def rabbit_push(stack: LocalStack) -> None:
    heading("RabbitMQ: the broker's own record of its consumers (management API)")
    admin = RabbitAdmin.local(stack)
    try:
        for queue in (
            NOTIFICATION_SEND.routing_key,
            POINT_COMMANDS.routing_key,
            POINT_BALANCE.routing_key,
        ):
            data = (await admin.http.get(f"/queues/%2F/{queue}")).raise_for_status().json()
            print(
                f"{queue}: durable={data['durable']} arguments={json.dumps(data['arguments'])} "
                f"ready={data['messages_ready']} unacked={data['messages_unacknowledged']} "
                f"consumers={data['consumers']}"
            )
            for c in data.get("consumer_details", []):
                print(f"    {consumer_record(c)}")
        channels = (await admin.http.get("/channels")).raise_for_status().json()
        print(f"\nopen channels: {len(channels)}; per channel: prefetch, unacked, consumers")
        for ch in sorted(channels, key=lambda c: c["name"]):
            print(
                f"    {ch['name']:<48} prefetch={ch['prefetch_count']:<4} "
                f"unacked={ch['messages_unacknowledged']:<4} consumers={ch['consumer_count']}"
            )
    finally:
        await admin.close()


async def stomp_and_amqp(stack: LocalStack) -> None:
    heading("AMQP and STOMP on one queue")
    queue_name = f"stomp.demo.{uuid.uuid4().hex[:6]}"
    admin = stack.creds.rabbitmq_admin
    connection = await aio_pika.connect(admin_amqp_url(stack), timeout=10)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, durable=True)
        stomp, connected = await StompClient.connect(
            stack.s.host, stack.s.rabbitmq_stomp_port, admin.user, admin.password
        )
        print(f"STOMP CONNECTED: {connected.headers}")
        sent = Frame(
            "SEND",
            {
                "destination": f"/amq/queue/{queue_name}",
                "content-type": "application/json",
                "persistent": "true",
                "ce-type": "demo.hello",
                "receipt": "send-1",
            },
            b'{"hello": "from STOMP"}',
        )
        await stomp.send(sent)
        print(f"STOMP frame sent, as it travels:\n{sent.text()}\n")
        receipt = await stomp.receive()
        print(f"the broker's answer: {receipt.text()}\n")
        message = await queue.get(timeout=5, fail=True)
        assert message is not None
        await message.ack()
        print(
            f"read over AMQP: body={message.body!r} content_type={message.content_type} "
            f"delivery_mode={message.delivery_mode} headers={dict(message.headers)}"
        )

        await channel.default_exchange.publish(
            aio_pika.Message(b'{"hello": "from AMQP"}', content_type="application/json"),
            routing_key=queue_name,
        )
        await stomp.send(
            Frame("SUBSCRIBE", {"destination": f"/amq/queue/{queue_name}", "id": "0"}, b"")
        )
        received = await stomp.receive()
        print(f"\npublished over AMQP, received as a STOMP frame:\n{received.text()}")
        await stomp.close()
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()


async def request_reply(stack: LocalStack) -> None:
    heading("Request/reply: GET /customers/{id}/summary asks point-service over point.balance")
    base = f"http://{stack.s.host}:{stack.s.order_service_port}"
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        latencies, outcomes = [], []
        for i in range(200):
            started = time.perf_counter()
            response = (await http.get(f"/customers/deep-dive-{i % 20}/summary")).json()
            latencies.append((time.perf_counter() - started) * 1000)
            outcomes.append(response["points"]["status"])
    q = statistics.quantiles(latencies, n=100)
    print(
        f"200 sequential calls: p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms; "
        f"outcomes {dict((o, outcomes.count(o)) for o in set(outcomes))}"
    )


async def main() -> None:
    stack, _ = build()
    await kafka_pull(stack)
    await rabbit_push(stack)
    await stomp_and_amqp(stack)
    await request_reply(stack)


if __name__ == "__main__":
    asyncio.run(main())
