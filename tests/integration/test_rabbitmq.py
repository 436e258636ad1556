"""RabbitMQ is the real broker: a durable queue keeps persistent, confirmed
messages across a node restart through the supervisor."""

from __future__ import annotations

import uuid

import aio_pika

from stackctl.components import LocalStack
from stackctl.control import restart
from stackctl.supervisor import Supervisor
from tests.support.rabbit import admin_amqp_url
from tests.support.stomp import Frame, StompClient


async def test_persistent_confirmed_messages_survive_a_node_restart(
    local_stack: LocalStack, supervisor: Supervisor
) -> None:
    queue_name = f"it-durable-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(admin_amqp_url(local_stack), timeout=10)
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

    connection = await aio_pika.connect(admin_amqp_url(local_stack), timeout=10)
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


async def test_stomp_and_amqp_clients_share_one_queue(local_stack: LocalStack) -> None:
    """The STOMP plugin is another door to the same queues: a persistent message
    sent as a STOMP frame is read over AMQP, and the other way round."""
    queue_name = f"it-stomp-{uuid.uuid4().hex[:8]}"
    admin = local_stack.creds.rabbitmq_admin
    url = (
        f"amqp://{admin.user}:{admin.password}@{local_stack.s.host}:{local_stack.s.rabbitmq_port}/"
    )
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, durable=True, auto_delete=True)
        stomp, _ = await StompClient.connect(
            local_stack.s.host, local_stack.s.rabbitmq_stomp_port, admin.user, admin.password
        )
        destination = f"/amq/queue/{queue_name}"
        await stomp.send(
            Frame(
                "SEND",
                {
                    "destination": destination,
                    "persistent": "true",
                    "x-kind": "stomp",
                    "receipt": "1",
                },
                b"from stomp",
            )
        )
        assert (await stomp.receive()).headers == {"receipt-id": "1"}
        message = await queue.get(timeout=5)
        assert message is not None
        await message.ack()
        assert message.body == b"from stomp"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.headers["x-kind"] == "stomp"

        await channel.default_exchange.publish(
            aio_pika.Message(b"from amqp", headers={"x-kind": "amqp"}), routing_key=queue_name
        )
        await stomp.send(Frame("SUBSCRIBE", {"destination": destination, "id": "0"}, b""))
        frame = await stomp.receive()
        assert (frame.command, frame.body) == ("MESSAGE", b"from amqp")
        assert frame.headers["x-kind"] == "amqp"
        await stomp.close()
