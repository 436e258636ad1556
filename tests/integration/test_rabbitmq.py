"""RabbitMQ is the real broker: a durable queue keeps persistent, confirmed
messages across a node restart through the supervisor."""

from __future__ import annotations

import uuid

import aio_pika

from stackctl.components import LocalStack
from stackctl.control import restart
from stackctl.supervisor import Supervisor


def amqp_url(stack: LocalStack, service: str = "order") -> str:
    account = stack.creds.rabbitmq[service]
    return f"amqp://{account.user}:{account.password}@{stack.s.host}:{stack.s.rabbitmq_port}/"


async def test_persistent_confirmed_messages_survive_a_node_restart(
    local_stack: LocalStack, supervisor: Supervisor
) -> None:
    queue_name = f"it-durable-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(amqp_url(local_stack), timeout=10)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(queue_name, durable=True)
        for n in range(100):
            # With publisher confirms, publish() returns once the broker has the message.
            confirmation = await channel.default_exchange.publish(
                aio_pika.Message(str(n).encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue.name,
            )
            assert confirmation is not None

    await restart(local_stack, supervisor, "rabbitmq")

    connection = await aio_pika.connect(amqp_url(local_stack), timeout=10)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, durable=True, passive=True)
        assert queue.declaration_result.message_count == 100
        bodies = []
        async with queue.iterator() as messages:
            async for message in messages:
                async with message.process():
                    bodies.append(int(message.body))
                if len(bodies) == 100:
                    break
        assert bodies == list(range(100))
        await queue.delete()
