"""The point service's brokers: connections, middlewares, the dead-letter
policy (each dead letter announced on the activity feed), the routers of
entrypoints/consumers.py and the AsyncAPI description of what the service
sends through its outbox."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from faststream import StreamMessage
from faststream.kafka import KafkaBroker
from faststream.rabbit import RabbitBroker
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalogue.contracts.notifications import SendNotification
from catalogue.contracts.points import PointsGranted, PointsRevoked
from catalogue.topology import (
    DEAD_LETTER_EXCHANGE,
    NOTIFICATION_SEND,
    ORDERS,
    ORDERS_POINT_SERVICE_DLT,
    POINT_COMMANDS,
    POINTS,
)
from messaging import brokers
from messaging.activity import FEED_OFF, ActivityPublisher, traced
from messaging.asyncapi import document_outbox
from messaging.brokers import ACTIVITY, SESSIONS, SETTINGS, provide
from messaging.consumer import UNREADABLE, DeadLetterPolicy, DeadLetterSink
from messaging.deadletter import announcing, kafka_dead_letter_topic, rabbit_dead_letter_queue
from messaging.unavailable import unavailable
from point_service.domain.model import InsufficientPointsError
from point_service.entrypoints import consumers
from point_service.service_layer import notices
from point_service.settings import PointServiceSettings

# FastStream logs through the process's JSON logging; per-message access lines
# at DEBUG.
LOGGER = logging.getLogger("point_service.faststream")

# Never processable as they are: straight to the dead-letter destination.
POISON = (*UNREADABLE, InsufficientPointsError)


def build_brokers(
    settings: PointServiceSettings,
    tracer_provider: TracerProvider,
    sessions: async_sessionmaker[AsyncSession],
    activity: ActivityPublisher = FEED_OFF,
) -> tuple[KafkaBroker, RabbitBroker]:
    kafka = kafka_broker(settings, tracer_provider, activity)
    rabbit = rabbit_broker(settings, tracer_provider, activity)
    consumers.use_settings(settings)
    kafka.include_router(consumers.orders)
    rabbit.include_router(consumers.commands)
    for broker in (kafka, rabbit):
        provide(broker, **{SETTINGS: settings, SESSIONS: sessions, ACTIVITY: activity})
    document_outbox(kafka, POINTS, PointsGranted)
    document_outbox(kafka, POINTS, PointsRevoked)
    document_outbox(rabbit, NOTIFICATION_SEND, SendNotification)
    return kafka, rabbit


def kafka_broker(
    settings: PointServiceSettings, tracer_provider: TracerProvider, activity: ActivityPublisher
) -> KafkaBroker:
    kafka = brokers.kafka_broker(settings, settings.otel_service_name, LOGGER, tracer_provider)
    dlt = kafka_dead_letter_topic(kafka, ORDERS_POINT_SERVICE_DLT.topic, settings.consumer_group)
    announced = announcing(dlt, dead_letter_notice(activity, ORDERS.topic, about_orders=True))
    kafka.add_middleware(dead_letter_policy(settings, ORDERS.topic, announced))
    return kafka


def rabbit_broker(
    settings: PointServiceSettings, tracer_provider: TracerProvider, activity: ActivityPublisher
) -> RabbitBroker:
    rabbit = brokers.rabbit_broker(settings, settings.otel_service_name, LOGGER, tracer_provider)
    queue = POINT_COMMANDS.routing_key
    sink = rabbit_dead_letter_queue(rabbit, DEAD_LETTER_EXCHANGE, queue)
    announced = announcing(sink, dead_letter_notice(activity, queue, about_orders=False))
    policy = dead_letter_policy(settings, queue, announced)
    # Only `point.commands`: `point.balance` answers or rejects (consumers.py).
    policy.applies = lambda msg: msg.raw_message.routing_key == queue
    rabbit.add_middleware(policy)
    return rabbit


def dead_letter_policy(
    settings: PointServiceSettings, source: str, sink: DeadLetterSink
) -> DeadLetterPolicy:
    """The innermost middleware: retries and dead letters happen inside the
    message's span and metrics."""
    return DeadLetterPolicy(
        source=source,
        sink=sink,
        transient=unavailable,
        poison=POISON,
        max_attempts=settings.consumer_max_attempts,
    )


def dead_letter_notice(
    activity: ActivityPublisher, source: str, *, about_orders: bool
) -> Callable[[StreamMessage[Any], str], None]:
    """Announces a dead letter from `source`; `about_orders`: its CloudEvents
    subject is an order id (a customer id on point.commands)."""

    def announce(msg: StreamMessage[Any], reason: str) -> None:
        order_id = subject_uuid(msg) if about_orders else None
        activity.publish(traced(notices.dead_letter(order_id, source, reason)))

    return announce


def subject_uuid(msg: StreamMessage[Any]) -> uuid.UUID | None:
    """The message's CloudEvents subject as a UUID, if it is one."""
    subject = msg.headers.get("ce_subject") or msg.headers.get("ce-subject")
    try:
        return uuid.UUID(str(subject))
    except ValueError:
        return None
