"""The notification service's message door, thin: check the envelope and the
attempt, call the handler, act on its outcome.

`notification.send` is consumed push-style: RabbitMQ delivers up to
`rabbitmq_prefetch` unacknowledged messages, highest priority first, and each
is acknowledged only after its mail was delivered (or handed on to a retry
queue or the parking lot, each publish confirmed first, directly: not through
an outbox). A failed delivery waits in `notification.send.retry.<n>` (TTL 1 s,
5 s, 25 s) and comes back through the dead-letter exchange; after the last
attempt, or at once for a permanent SMTP failure or a malformed message, it
goes to the parking lot.

The router is declared here, once per process; the broker factory includes
it. The prefetch is a setting (RABBITMQ_PREFETCH) that FastStream takes at
declaration and reads when the subscriber starts: `use_settings` sets it,
from the broker factory.
"""

from __future__ import annotations

from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitQueue, RabbitRouter

from catalogue.contracts.notifications import SendNotification
from catalogue.topology import (
    NOTIFICATION_RETRY_EXCHANGE,
    NOTIFICATION_SEND,
    notification_retry_queue,
)
from messaging.consumer import IncomingEnvelope, PoisonMessageError, expect_version
from messaging.context import RabbitDelivery, TheRabbitBroker
from notification_service.domain.model import Park, RetryLater
from notification_service.entrypoints.dependencies import ParkingLot, TheMailer, UnitsOfWork
from notification_service.service_layer import handlers
from notification_service.settings import NotificationServiceSettings

QUEUE = NOTIFICATION_SEND.routing_key
ATTEMPT_HEADER = "x-delivery-attempt"

sends = RabbitRouter()
send_notifications = sends.subscriber(
    RabbitQueue(QUEUE, durable=True, declare=False),
    ack_policy=AckPolicy.NACK_ON_ERROR,
    # A command gets no answer: a reply_to is ignored (this service may not
    # publish to the default exchange; a refused reply would requeue the
    # command for ever).
    no_reply=True,
    title=QUEUE,
    description="SendNotification: deliver one e-mail; acked once delivered.",
)


@send_notifications
async def on_send_notification(
    body: SendNotification,
    env: IncomingEnvelope,
    units: UnitsOfWork,
    mailer: TheMailer,
    parking_lot: ParkingLot,
    broker: TheRabbitBroker,
    message: RabbitDelivery,
) -> None:
    if env.type != SendNotification.TYPE:
        raise PoisonMessageError(f"{QUEUE} takes {SendNotification.TYPE} v1, not {env.type}")
    expect_version(env, SendNotification)
    attempt = delivery_attempt(message.headers.get(ATTEMPT_HEADER, 1))
    outcome = await handlers.deliver(body, env, attempt, units(), mailer)
    if isinstance(outcome, RetryLater):
        await retry_later(broker, message, outcome)
    elif isinstance(outcome, Park):
        await parking_lot(message, "undeliverable", outcome.reason)


def delivery_attempt(value: object) -> int:
    """The attempt a message is at, from its header: set by this service, so
    anything but 1 to MAX_ATTEMPTS is a forgery or a bug, poison before any
    mail is sent."""
    attempt = value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(value, str) and value.isdigit():
        attempt = int(value)
    if attempt is None or not handlers.POLICY.allows(attempt):
        raise PoisonMessageError(f"{ATTEMPT_HEADER} is {value!r}, not 1 to {handlers.MAX_ATTEMPTS}")
    return attempt


async def retry_later(
    broker: TheRabbitBroker, message: RabbitDelivery, outcome: RetryLater
) -> None:
    """The message, unchanged but for its attempt and last error, to the retry
    queue of its next attempt (confirmed before the original is acked); it
    comes back to `notification.send` when its TTL ends."""
    await broker.publish(
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
        priority=message.raw_message.priority,
        persist=True,
        mandatory=True,
    )


def use_settings(settings: NotificationServiceSettings) -> None:
    """The subscriber option that comes from settings, set before the broker
    starts: the channel with the prefetch."""
    send_notifications.channel = Channel(prefetch_count=settings.rabbitmq_prefetch)
