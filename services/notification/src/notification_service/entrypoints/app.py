"""The notification service's message door (FastStream), thin.

The process: the broker (entrypoints/brokers.py, with the router of
entrypoints/consumers.py), the SMTP mailer, health and metrics routes, the
read API (entrypoints/http.py), the retention of the inbox and the delivery
history, the activity feed (messaging.activity), and the AsyncAPI document,
in an app that starts its broker once the queue it consumes exists.
"""

from __future__ import annotations

from datetime import timedelta

from faststream.asgi import AsgiFastStream
from faststream.specification import AsyncAPI
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalogue.contracts.activity import ActivityKind, channel
from catalogue.topology import NOTIFICATION_SEND
from messaging.activity import activity_feed
from messaging.connections import rabbitmq_ssl_context
from messaging.database import build_engine
from messaging.health import database_check, health_routes
from messaging.inbox.retention import Retention, RetentionTask
from messaging.startup import ProvisionedFastStream, rabbit_queues_exist
from notification_service.adapters.mailer import SmtpMailer, smtp_security
from notification_service.adapters.orm import deliveries, inbox
from notification_service.entrypoints.brokers import LOGGER, build_brokers
from notification_service.entrypoints.http import read_routes
from notification_service.service_layer.notices import SOURCE
from notification_service.service_layer.unit_of_work import UnitOfWork
from notification_service.settings import NotificationServiceSettings


def create_app(
    settings: NotificationServiceSettings, tracer_provider: TracerProvider
) -> AsgiFastStream:
    engine = build_engine(settings, settings.otel_service_name)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    mailer = SmtpMailer(
        settings.smtp_host,
        settings.smtp_port,
        settings.smtp_timeout_s,
        settings.smtp_sender,
        settings.smtp_workers,
        security=smtp_security(settings),
    )
    activity = activity_feed(settings, channel(SOURCE), ActivityKind)
    rabbit = build_brokers(settings, tracer_provider, sessions, mailer, activity)
    retention = retention_task(settings, sessions)
    queue = NOTIFICATION_SEND.routing_key

    async def dispose() -> None:
        mailer.close()
        await activity.close()
        await engine.dispose()

    return ProvisionedFastStream(
        rabbit,
        topology=[
            (
                f"queue {queue}",
                rabbit_queues_exist(
                    settings.rabbitmq_url(), [queue], ssl_context=rabbitmq_ssl_context(settings)
                ),
            )
        ],
        startup_timeout_s=settings.startup_timeout_s,
        logger=LOGGER,
        asgi_routes=[
            *health_routes([database_check(sessions), lambda: rabbit.ping(2)]),
            *read_routes(lambda: UnitOfWork(sessions)),
        ],
        asyncapi_path="/asyncapi",
        on_startup=[activity.start],
        after_startup=[retention.start],
        on_shutdown=[retention.stop],
        after_shutdown=[dispose],
        specification=AsyncAPI(
            rabbit,
            title="notification-service",
            version="1",
            description=__doc__.split("\n\n")[0] if __doc__ else None,
        ),
    )


def retention_task(
    settings: NotificationServiceSettings, sessions: async_sessionmaker[AsyncSession]
) -> RetentionTask:
    """The inbox, and the delivery history, which outlives it (handlers.deliver
    treats a command in either as delivered)."""
    return RetentionTask(
        sessions,
        [
            Retention(inbox, "received_at", timedelta(days=settings.inbox_retention_days)),
            Retention(
                deliveries,
                "delivered_at",
                timedelta(days=settings.delivery_history_retention_days),
            ),
        ],
        settings.inbox_purge_interval_s,
        settings.inbox_purge_batch_size,
    )
