"""The notification service's message door (FastStream), thin.

`notification.send` is consumed push-style: RabbitMQ delivers up to
`rabbitmq_prefetch` unacknowledged messages, highest priority first, and each
is acknowledged only after its mail was delivered (or handed on to a retry
queue or the parking lot, each publish confirmed first). A failed delivery
waits in `notification.send.retry.<n>` (TTL 1 s, 5 s, 25 s) and comes back
through the dead-letter exchange; after the last attempt, or at once for a
permanent SMTP failure or a malformed message, it goes to the parking lot.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from faststream import AckPolicy, Depends
from faststream.asgi import AsgiFastStream
from faststream.rabbit import Channel, RabbitBroker, RabbitMessage, RabbitQueue
from faststream.rabbit.opentelemetry import RabbitTelemetryMiddleware
from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
from faststream.specification import AsyncAPI
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import async_sessionmaker

from catalogue.contracts.notifications import SendNotification
from catalogue.topology import (
    DEAD_LETTER_EXCHANGE,
    NOTIFICATION_RETRY_EXCHANGE,
    NOTIFICATION_SEND,
    notification_retry_queue,
)
from messaging.connections import rabbitmq_ssl_context
from messaging.consumer import (
    DeadLetterPolicy,
    Envelope,
    PoisonMessageError,
    envelope,
    parse_rabbit_message,
)
from messaging.database import build_engine
from messaging.deadletter import rabbit_dead_letter_queue
from messaging.faststream_security import rabbitmq_security
from messaging.health import database_check, health_routes
from messaging.inbox.retention import Retention, RetentionTask
from messaging.startup import ProvisionedFastStream, rabbit_queues_exist
from messaging.unavailable import unavailable
from notification_service.adapters.mailer import SmtpMailer, smtp_security
from notification_service.adapters.orm import deliveries, inbox
from notification_service.service_layer import handlers
from notification_service.settings import NotificationServiceSettings

LOGGER = logging.getLogger("notification_service.faststream")
ATTEMPT_HEADER = "x-delivery-attempt"


def delivery_attempt(value: object) -> int:
    """The attempt a message is at, from its header: set by this service, so
    anything but 1 to MAX_ATTEMPTS is a forgery or a bug, poison before any
    mail is sent."""
    attempt = value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(value, str) and value.isdigit():
        attempt = int(value)
    if attempt is None or not 1 <= attempt <= handlers.MAX_ATTEMPTS:
        raise PoisonMessageError(f"{ATTEMPT_HEADER} is {value!r}, not 1 to {handlers.MAX_ATTEMPTS}")
    return attempt


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
    rabbit = RabbitBroker(
        settings.rabbitmq_url(),
        security=rabbitmq_security(settings),
        parser=parse_rabbit_message,
        logger=LOGGER,
        log_level=logging.DEBUG,
        middlewares=[
            RabbitTelemetryMiddleware(tracer_provider=tracer_provider),
            RabbitPrometheusMiddleware(registry=REGISTRY, app_name=settings.otel_service_name),
        ],
    )
    queue = NOTIFICATION_SEND.routing_key
    park = rabbit_dead_letter_queue(rabbit, DEAD_LETTER_EXCHANGE, queue)
    # Malformed messages go to the parking lot at once; a down database is
    # waited for with the message in hand.
    rabbit.add_middleware(
        DeadLetterPolicy(
            source=queue,
            sink=park,
            transient=unavailable,
        )
    )

    @rabbit.subscriber(
        RabbitQueue(queue, durable=True, declare=False),
        channel=Channel(prefetch_count=settings.rabbitmq_prefetch),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        # A command gets no answer: a reply_to is ignored (this service may not
        # publish to the default exchange; a refused reply would requeue the
        # command for ever).
        no_reply=True,
        title=queue,
        description="SendNotification: deliver one e-mail; acked once delivered.",
    )
    async def on_send_notification(
        body: SendNotification,
        env: Envelope = Depends(envelope),  # noqa: B008
        *,
        message: RabbitMessage,
    ) -> None:
        if (
            env.type != SendNotification.TYPE
            or env.schema_version != SendNotification.SCHEMA_VERSION
        ):
            raise PoisonMessageError(f"{queue} takes {SendNotification.TYPE} v1, not {env.type}")
        attempt = delivery_attempt(message.headers.get(ATTEMPT_HEADER, 1))
        outcome = await handlers.deliver(body, env, attempt, sessions, mailer)
        if isinstance(outcome, handlers.RetryLater):
            raw = message.raw_message
            await rabbit.publish(
                message.body,
                exchange=NOTIFICATION_RETRY_EXCHANGE,
                routing_key=notification_retry_queue(outcome.next_attempt - 1),
                headers={
                    **message.headers,
                    ATTEMPT_HEADER: outcome.next_attempt,
                    "x-last-error": outcome.reason[:1000],
                },
                message_id=message.message_id,
                correlation_id=message.correlation_id,
                content_type=message.content_type,
                priority=raw.priority,
                persist=True,
                mandatory=True,
            )
        elif isinstance(outcome, handlers.Park):
            await park(message, "undeliverable", outcome.reason)

    broker_checks = [lambda: rabbit.ping(2)]
    # The inbox, and the delivery history, which outlives it (handlers.deliver
    # treats a command in either as delivered).
    retention = RetentionTask(
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

    async def dispose() -> None:
        mailer.close()
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
        asgi_routes=health_routes([database_check(sessions), *broker_checks]),
        asyncapi_path="/asyncapi",
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
