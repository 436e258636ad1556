"""The notification service's broker: connection, middlewares, the dead-letter
policy and the router of entrypoints/consumers.py, with the process's
sessions, mailer and parking lot in its context."""

from __future__ import annotations

import logging

from faststream.rabbit import RabbitBroker
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalogue.topology import DEAD_LETTER_EXCHANGE, NOTIFICATION_SEND
from messaging.brokers import SESSIONS, provide, rabbit_broker
from messaging.consumer import DeadLetterPolicy
from messaging.deadletter import rabbit_dead_letter_queue
from messaging.unavailable import unavailable
from notification_service.adapters.mailer import Mailer
from notification_service.entrypoints import consumers
from notification_service.entrypoints.dependencies import MAILER, PARKING_LOT
from notification_service.settings import NotificationServiceSettings

# FastStream logs through the process's JSON logging; per-message access lines
# at DEBUG.
LOGGER = logging.getLogger("notification_service.faststream")


def build_brokers(
    settings: NotificationServiceSettings,
    tracer_provider: TracerProvider,
    sessions: async_sessionmaker[AsyncSession],
    mailer: Mailer,
) -> RabbitBroker:
    rabbit = rabbit_broker(settings, settings.otel_service_name, LOGGER, tracer_provider)
    queue = NOTIFICATION_SEND.routing_key
    parking_lot = rabbit_dead_letter_queue(rabbit, DEAD_LETTER_EXCHANGE, queue)
    # The innermost middleware: malformed messages go to the parking lot at
    # once; a down database is waited for with the message in hand.
    rabbit.add_middleware(DeadLetterPolicy(source=queue, sink=parking_lot, transient=unavailable))
    consumers.use_settings(settings)
    rabbit.include_router(consumers.sends)
    provide(rabbit, **{SESSIONS: sessions, MAILER: mailer, PARKING_LOT: parking_lot})
    return rabbit
