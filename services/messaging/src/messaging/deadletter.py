"""Where dead letters go: a Kafka dead-letter topic per consumer group, or a
RabbitMQ dead-letter queue per command queue. The original message is kept
byte for byte, with the reason and its original coordinates in headers, so
that it can be inspected and re-driven.

One exception: a Kafka record that fits the topic it came from but not, with
the dead-letter headers added, the dead-letter topic is dead-lettered
without its body and original headers; its coordinates say where to read it
while the source topic retains it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError
from faststream import StreamMessage
from faststream.kafka import KafkaBroker
from faststream.rabbit import RabbitBroker

from messaging.consumer import DeadLetterSink

LOGGER = logging.getLogger(__name__)


def _common(msg: StreamMessage[Any], kind: str, reason: str) -> dict[str, Any]:
    headers: dict[str, Any] = {k: v for k, v in msg.headers.items() if isinstance(v, str)}
    headers.update(
        {
            "x-dead-letter-kind": kind,
            "x-dead-letter-reason": reason,
            "x-dead-letter-at": datetime.now(UTC).isoformat(),
        }
    )
    return headers


def kafka_dead_letter_topic(broker: KafkaBroker, topic: str, group: str) -> DeadLetterSink:
    async def sink(msg: StreamMessage[Any], kind: str, reason: str) -> None:
        record = msg.raw_message
        headers = _common(msg, kind, reason)
        headers.update(
            {
                "x-original-topic": record.topic,
                "x-original-partition": str(record.partition),
                "x-original-offset": str(record.offset),
                "x-consumer-group": group,
            }
        )
        try:
            await broker.publish(msg.body, topic=topic, key=record.key, headers=headers)
        except MessageSizeTooLargeError:
            # Failing here would rewind to the message and fail again, for ever.
            kept = {k: v for k, v in headers.items() if k.startswith("x-") or k in IDENTITY}
            kept = {k: v[:200] for k, v in kept.items()}
            kept["x-dead-letter-body-omitted"] = (
                f"{len(msg.body)} bytes: too large for {topic} with these headers;"
                " the original is at x-original-topic/partition/offset"
            )
            await broker.publish(b"", topic=topic, key=record.key, headers=kept)

    return sink


# Kept when a dead letter must go without its original headers.
IDENTITY = ("ce_id", "ce_type", "ce_source")


def rabbit_dead_letter_queue(broker: RabbitBroker, exchange: str, queue: str) -> DeadLetterSink:
    """Publishes to the dead-letter `exchange` (the system's, from its
    topology) with the queue's name as routing key; the queue's dead-letter
    queue is bound to it with that key."""

    async def sink(msg: StreamMessage[Any], kind: str, reason: str) -> None:
        raw = msg.raw_message
        headers = _common(msg, kind, reason)
        headers.update(
            {
                "x-original-exchange": raw.exchange or "",
                "x-original-routing-key": raw.routing_key or "",
                "x-original-queue": queue,
            }
        )
        await broker.publish(
            msg.body,
            exchange=exchange,
            routing_key=queue,
            headers=headers,
            message_id=msg.message_id,
            correlation_id=msg.correlation_id,
            content_type=msg.content_type,
            persist=True,
            mandatory=True,
        )

    return sink


def announcing(
    sink: DeadLetterSink, announce: Callable[[StreamMessage[Any], str], None]
) -> DeadLetterSink:
    """The sink, then `announce(message, reason)` once the dead letter is
    published: an activity notice (messaging.activity), which never fails the
    dead-lettering (a failure here would redeliver the message)."""

    async def announced(msg: StreamMessage[Any], kind: str, reason: str) -> None:
        await sink(msg, kind, reason)
        try:
            announce(msg, reason)
        except Exception:
            LOGGER.exception("no activity notice for dead letter %s", msg.message_id)

    return announced
