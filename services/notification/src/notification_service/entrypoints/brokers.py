"""The notification service's broker: connection, middlewares, the dead-letter
policy and the router of entrypoints/consumers.py, with the process's
sessions, activity feed, mailer and parking lot in its context. Whatever is
parked, by the policy or by the door, is announced on the activity feed."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from faststream import StreamMessage
from faststream.rabbit import RabbitBroker
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalogue.topology import DEAD_LETTER_EXCHANGE, NOTIFICATION_SEND
from messaging.activity import FEED_OFF, ActivityPublisher, traced
from messaging.brokers import ACTIVITY, SESSIONS, provide, rabbit_broker
from messaging.consumer import DeadLetterPolicy
from messaging.deadletter import announcing, rabbit_dead_letter_queue
from messaging.unavailable import unavailable
from notification_service.adapters.mailer import Mailer
from notification_service.domain.model import order_of
from notification_service.entrypoints import consumers
from notification_service.entrypoints.dependencies import MAILER, PARKING_LOT
from notification_service.service_layer import notices
from notification_service.settings import NotificationServiceSettings

# FastStream logs through the process's JSON logging; per-message access lines
# at DEBUG.
LOGGER = logging.getLogger("notification_service.faststream")


def build_brokers(
    settings: NotificationServiceSettings,
    tracer_provider: TracerProvider,
    sessions: async_sessionmaker[AsyncSession],
    mailer: Mailer,
    activity: ActivityPublisher = FEED_OFF,
) -> RabbitBroker:
    rabbit = rabbit_broker(settings, settings.otel_service_name, LOGGER, tracer_provider)
    queue = NOTIFICATION_SEND.routing_key
    parking_lot = announcing(
        rabbit_dead_letter_queue(rabbit, DEAD_LETTER_EXCHANGE, queue), parked_notice(activity)
    )
    # The innermost middleware: malformed messages go to the parking lot at
    # once; a down database is waited for with the message in hand.
    rabbit.add_middleware(DeadLetterPolicy(source=queue, sink=parking_lot, transient=unavailable))
    consumers.use_settings(settings)
    rabbit.include_router(consumers.sends)
    provide(
        rabbit,
        **{SESSIONS: sessions, ACTIVITY: activity, MAILER: mailer, PARKING_LOT: parking_lot},
    )
    return rabbit


def parked_notice(activity: ActivityPublisher) -> Callable[[StreamMessage[Any], str], None]:
    """Announces a parked mail: its kind and order when the command can be
    read that far, the reason always."""

    def announce(msg: StreamMessage[Any], reason: str) -> None:
        kind = mail_kind(msg.body)
        subject = msg.headers.get("ce-subject")
        order_id = order_of(kind, str(subject)) if kind is not None else None
        activity.publish(traced(notices.mail_parked(kind, order_id, reason)))

    return announce


def mail_kind(body: bytes) -> str | None:
    """The `kind` of a SendNotification body, if it has one."""
    try:
        kind = json.loads(body).get("kind")
    except (ValueError, AttributeError, RecursionError):
        return None
    return kind if isinstance(kind, str) else None
