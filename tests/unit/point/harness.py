"""point-service's real brokers (entrypoints/brokers.py: middlewares, the
dead-letter policy, the routers) under FastStream's in-memory test brokers,
with the in-memory database behind the unit-of-work dependency."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from faststream import Context
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.rabbit import RabbitBroker, RabbitExchange, RabbitQueue, TestRabbitBroker
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.ext.asyncio import async_sessionmaker

from catalogue.contracts.points import GetPointBalance
from catalogue.topology import (
    DEAD_LETTER_EXCHANGE,
    ORDERS,
    ORDERS_POINT_SERVICE_DLT,
    POINT_BALANCE,
    POINT_COMMANDS,
    POINT_COMMANDS_DEAD_LETTER,
)
from messaging.asyncapi import placeholder_settings
from messaging.envelope import Contract
from point_service.entrypoints.brokers import build_brokers
from point_service.entrypoints.dependencies import unit_of_work_factory
from point_service.settings import PointServiceSettings
from tests.support.activity import RecordingFeed
from tests.support.harness import in_memory_units_of_work, on_the_wire, undecoded
from tests.unit.point.builders import sent
from tests.unit.point.fakes import FakeDatabase

# A caller's direct reply-to pseudo-queue.
CALLER = "amq.rabbitmq.reply-to.g1h2AA5yZXBseUAxMjM0NTY3OA=="


@dataclass(frozen=True)
class Received:
    """A message as it arrived: where, body, headers."""

    destination: str
    body: bytes
    headers: dict[str, Any]
    correlation_id: str | None = None


@dataclass
class Point:
    db: FakeDatabase
    kafka: KafkaBroker
    rabbit: RabbitBroker
    # What the doors announced (the unit of work's notices are the db's).
    activity: RecordingFeed
    dead: list[Received] = field(default_factory=list)
    replies: list[Received] = field(default_factory=list)

    async def send(
        self,
        data: Contract,
        *,
        message_id: uuid.UUID | None = None,
        headers: dict[str, Any] | None = None,
        body: bytes | None = None,
    ) -> uuid.UUID:
        """Deliver `data` as its producer sends it (CloudEvents binary mode);
        `headers` and `body` replace parts of it."""
        message = sent(data, message_id)
        payload, wire = on_the_wire(message, headers, body)
        if message.destination == ORDERS:
            key = message.subject.encode()
            await self.kafka.publish(payload, ORDERS.topic, key=key, headers=wire)
        else:
            await self.rabbit.publish(
                payload, POINT_COMMANDS.routing_key, headers=wire, content_type="application/json"
            )
        return message.id

    async def ask_balance(self, customer_id: str, reply_to: str = CALLER) -> None:
        request = GetPointBalance(customer_id=customer_id)
        await self.rabbit.publish(
            request.model_dump_json().encode(),
            POINT_BALANCE.routing_key,
            reply_to=reply_to,
            correlation_id="request-1",
            content_type="application/json",
        )


def record_dead_letters_and_replies(point: Point) -> None:
    async def dead_letter(message: Any = Context("message")) -> None:  # noqa: B008
        raw = message.raw_message
        where = getattr(raw, "topic", None) or f"{raw.exchange}/{raw.routing_key}"
        point.dead.append(Received(where, message.body, dict(message.headers)))

    async def reply(message: Any = Context("message")) -> None:  # noqa: B008
        received = Received(CALLER, message.body, dict(message.headers), message.correlation_id)
        point.replies.append(received)

    point.kafka.subscriber(ORDERS_POINT_SERVICE_DLT.topic, group_id="inspector", decoder=undecoded)(
        dead_letter
    )
    point.rabbit.subscriber(
        RabbitQueue(POINT_COMMANDS_DEAD_LETTER, routing_key=POINT_COMMANDS.routing_key),
        RabbitExchange(DEAD_LETTER_EXCHANGE),
        no_reply=True,
        decoder=undecoded,
    )(dead_letter)
    point.rabbit.subscriber(RabbitQueue(CALLER), no_reply=True)(reply)


def settings(**values: Any) -> PointServiceSettings:
    return PointServiceSettings.model_validate({**placeholder_settings(), **values})


@contextlib.asynccontextmanager
async def running(db: FakeDatabase, **setting_values: Any) -> AsyncIterator[Point]:
    activity = RecordingFeed()
    kafka, rabbit = build_brokers(
        settings(**setting_values), TracerProvider(), async_sessionmaker(), activity
    )
    point = Point(db, kafka, rabbit, activity)
    record_dead_letters_and_replies(point)

    with in_memory_units_of_work((kafka, rabbit), unit_of_work_factory, db.unit_of_work):
        async with TestKafkaBroker(kafka), TestRabbitBroker(rabbit):
            yield point
