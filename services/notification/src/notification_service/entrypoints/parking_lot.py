"""The notification parking lot: list what is parked and why, and re-drive it.

Re-driving republishes the message, body and headers unchanged except for a
fresh attempt count, to `commands`/`notification.send`, with a publisher
confirm, and only then removes it from the parking lot.
"""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from catalogue.topology import COMMANDS_EXCHANGE, NOTIFICATION_PARKING_LOT, NOTIFICATION_SEND
from messaging.connections import rabbitmq_ssl_context
from notification_service.settings import NotificationServiceSettings

RESET = ("x-delivery-attempt", "x-last-error")


async def _all_parked(channel: aio_pika.abc.AbstractChannel) -> list[AbstractIncomingMessage]:
    """Take every parked message (unacked, so a crash leaves them parked)."""
    queue = await channel.get_queue(NOTIFICATION_PARKING_LOT, ensure=True)
    taken = []
    while (message := await queue.get(no_ack=False, fail=False)) is not None:
        taken.append(message)
    return taken


def describe(message: AbstractIncomingMessage) -> str:
    headers = message.headers or {}
    kind, reason = (_text(headers.get(h)) for h in ("x-dead-letter-kind", "x-dead-letter-reason"))
    return f"{message.message_id}  priority {message.priority}  {kind}: {reason}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


async def list_parked(settings: NotificationServiceSettings) -> None:
    connection = await aio_pika.connect(
        settings.rabbitmq_url(), timeout=10, ssl_context=rabbitmq_ssl_context(settings)
    )
    async with connection:
        channel = await connection.channel()
        parked = await _all_parked(channel)
        print(f"{len(parked)} message(s) in {NOTIFICATION_PARKING_LOT}")
        for message in parked:
            print(describe(message))
        for message in parked:
            await message.nack(requeue=True)


async def redrive(
    settings: NotificationServiceSettings, ids: list[str], *, everything: bool
) -> int:
    connection = await aio_pika.connect(
        settings.rabbitmq_url(), timeout=10, ssl_context=rabbitmq_ssl_context(settings)
    )
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(COMMANDS_EXCHANGE)
        parked = await _all_parked(channel)
        wanted = set(ids)
        done = set()
        for message in parked:
            if not everything and message.message_id not in wanted:
                await message.nack(requeue=True)
                continue
            headers = {
                k: v
                for k, v in (message.headers or {}).items()
                if not k.startswith("x-dead-letter") and k not in RESET
            }
            await exchange.publish(
                aio_pika.Message(
                    message.body,
                    headers=headers,
                    content_type=message.content_type,
                    message_id=message.message_id,
                    correlation_id=message.correlation_id,
                    priority=message.priority,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=NOTIFICATION_SEND.routing_key,
                mandatory=True,
            )
            await message.ack()
            done.add(message.message_id)
            print(f"re-driven {message.message_id}")
    for missing in sorted(wanted - done):
        print(f"not in the parking lot: {missing}")
    return 1 if wanted - done else 0
