"""notification-service's real broker (entrypoints/brokers.py: middlewares,
the dead-letter policy, the router) under FastStream's in-memory test broker,
with the in-memory database behind the unit-of-work dependency and a fake
mailer in the broker's context."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from faststream import Context
from faststream.rabbit import RabbitBroker, RabbitExchange, RabbitQueue, TestRabbitBroker
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.ext.asyncio import async_sessionmaker

from catalogue.contracts.notifications import SendNotification
from catalogue.topology import (
    DEAD_LETTER_EXCHANGE,
    NOTIFICATION_PARKING_LOT,
    NOTIFICATION_RETRY_DELAYS_S,
    NOTIFICATION_RETRY_EXCHANGE,
    NOTIFICATION_SEND,
    notification_retry_queue,
)
from messaging.asyncapi import placeholder_settings
from notification_service.entrypoints.brokers import build_brokers
from notification_service.entrypoints.dependencies import unit_of_work_factory
from notification_service.settings import NotificationServiceSettings
from tests.support.activity import RecordingFeed
from tests.support.harness import in_memory_units_of_work, on_the_wire, undecoded
from tests.unit.notification.builders import sent
from tests.unit.notification.fakes import FakeDatabase, FakeMailer

QUEUE = NOTIFICATION_SEND.routing_key


@dataclass(frozen=True)
class Received:
    """A message as it arrived: which queue, body, headers, properties."""

    queue: str
    body: bytes
    headers: dict[str, Any]
    message_id: str | None
    correlation_id: str | None
    content_type: str | None
    priority: int | None


@dataclass
class Notification:
    db: FakeDatabase
    mailer: FakeMailer
    rabbit: RabbitBroker
    # What the door announced (the unit of work's notices are the db's).
    activity: RecordingFeed
    parked: list[Received] = field(default_factory=list)
    retried: list[Received] = field(default_factory=list)

    async def send(
        self,
        command: SendNotification,
        *,
        message_id: uuid.UUID | None = None,
        headers: dict[str, Any] | None = None,
        body: bytes | None = None,
        at: datetime | None = None,
        about: str = "c-1",
    ) -> uuid.UUID:
        """Deliver `command` as its producer sends it (CloudEvents binary mode,
        its kind's priority); `headers` and `body` replace parts of it."""
        message = sent(command, message_id, at, about)
        payload, wire = on_the_wire(message, headers, body)
        await self.rabbit.publish(
            payload,
            QUEUE,
            headers=wire,
            message_id=str(message.id),
            correlation_id=message.context.correlation_id,
            content_type="application/json",
            priority=message.priority,
        )
        return message.id

    async def redeliver(self, retried: Received) -> None:
        """A message back from its retry queue, as the dead-letter exchange returns it."""
        await self.rabbit.publish(
            retried.body,
            QUEUE,
            headers=retried.headers,
            message_id=retried.message_id,
            correlation_id=retried.correlation_id,
            content_type=retried.content_type,
            priority=retried.priority,
        )


def record_parked_and_retried(notification: Notification) -> None:
    def recorder(into: list[Received]) -> Any:
        async def record(message: Any = Context("message")) -> None:  # noqa: B008
            raw = message.raw_message
            into.append(
                Received(
                    raw.routing_key,
                    message.body,
                    dict(message.headers),
                    message.message_id,
                    message.correlation_id,
                    message.content_type,
                    raw.priority,
                )
            )

        return record

    retry_queues = [
        notification_retry_queue(n) for n in range(1, len(NOTIFICATION_RETRY_DELAYS_S) + 1)
    ]
    queues = [(NOTIFICATION_PARKING_LOT, QUEUE, DEAD_LETTER_EXCHANGE, notification.parked)]
    queues += [(q, q, NOTIFICATION_RETRY_EXCHANGE, notification.retried) for q in retry_queues]
    for queue, routing_key, exchange, into in queues:
        notification.rabbit.subscriber(
            RabbitQueue(queue, routing_key=routing_key),
            RabbitExchange(exchange),
            no_reply=True,
            decoder=undecoded,
        )(recorder(into))


def settings(**values: Any) -> NotificationServiceSettings:
    return NotificationServiceSettings.model_validate({**placeholder_settings(), **values})


@contextlib.asynccontextmanager
async def running(
    db: FakeDatabase, mailer: FakeMailer, **setting_values: Any
) -> AsyncIterator[Notification]:
    activity = RecordingFeed()
    rabbit = build_brokers(
        settings(**setting_values), TracerProvider(), async_sessionmaker(), mailer, activity
    )
    notification = Notification(db, mailer, rabbit, activity)
    record_parked_and_retried(notification)

    with in_memory_units_of_work([rabbit], unit_of_work_factory, db.unit_of_work):
        async with TestRabbitBroker(rabbit):
            yield notification
