"""Delivering one SendNotification: deduplicate, record, send, commit, and
announce the mail on the activity feed once committed
(service_layer/notices.py). It takes the command, its envelope, the attempt
it is at, a unit of work and a mailer; no broker, no SQL.

The mail goes out before the delivery record commits (both inside one
transaction, whose uncommitted inbox row makes a concurrent copy of the
message wait until it ends): if the process dies in between, the redelivered
command sends the mail again (at-least-once; the mail's Message-ID is the
command id, the same on every resend, so that mail stores and clients show
the duplicate once).
Committing first and sending after would instead lose mail on such a crash.
The record is written, uncommitted, before the mail goes out: a value the
database refuses (a NUL character, an attempt count beyond its column) fails
the delivery before anything is sent, not after the send, when each retry
would mail again.

A live process never sends twice: the send-and-record is shielded from
cancellation. aiormq cancels a channel's in-flight handler tasks when the
RabbitMQ connection drops; unshielded, a handler cancelled after the SMTP
server accepted the mail rolled its record back, and the redelivered command
mailed again (found by the e2e RabbitMQ-outage scenario).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime

from prometheus_client import Counter, Histogram

from catalogue.contracts.notifications import NotificationKind, SendNotification
from catalogue.topology import NOTIFICATION_RETRY_DELAYS_S
from messaging.consumer import DUPLICATES, Envelope
from notification_service.adapters.mailer import (
    Mailer,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
from notification_service.domain.model import (
    AttemptPolicy,
    Delivered,
    Delivery,
    DeliveryRecord,
    Duplicate,
    Outcome,
    Park,
    RetryLater,
    order_of,
)
from notification_service.service_layer import notices
from notification_service.service_layer.unit_of_work import NotificationUnitOfWork

# The outcomes are the domain's; callers read them from here too.
__all__ = [
    "CONSUMER",
    "MAX_ATTEMPTS",
    "POLICY",
    "Delivered",
    "Duplicate",
    "Outcome",
    "Park",
    "RetryLater",
    "deliver",
    "deliveries_of_orders",
]

LOGGER = logging.getLogger(__name__)
CONSUMER = "notification-service.send"
POLICY = AttemptPolicy(NOTIFICATION_RETRY_DELAYS_S)
MAX_ATTEMPTS = POLICY.max_attempts

OUTCOMES = Counter(
    "notification_deliveries_total",
    "Outcome of each SendNotification delivery attempt (delivered, duplicate, retry, parked).",
    ["kind", "outcome"],
)
LABELS: dict[type[Outcome], str] = {
    Delivered: "delivered",
    Duplicate: "duplicate",
    RetryLater: "retry",
    Park: "parked",
}
# Every series from the start at 0 (increase() misses a series born at 1).
for _kind in NotificationKind:
    for _outcome in LABELS.values():
        OUTCOMES.labels(_kind.value, _outcome)


# For "order" mails, the command was written in the order's own transaction:
# this is order placed → confirmation mail delivered.
END_TO_END = Histogram(
    "notification_end_to_end_seconds",
    "From the SendNotification being written (its CloudEvents time) to the mail being"
    " accepted by the SMTP server, first deliveries only.",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


async def deliver(
    command: SendNotification,
    envelope: Envelope,
    attempt: int,
    uow: NotificationUnitOfWork,
    mailer: Mailer,
) -> Outcome:
    """Deliver once; a cancelled caller (the message stays unacked and comes back)
    does not cancel a delivery under way, which finishes and records itself."""
    delivery = _deliver(command, envelope, attempt, uow, mailer)
    task = asyncio.ensure_future(_counted(command, envelope, delivery))
    _UNDER_WAY.add(task)
    task.add_done_callback(_finished)
    return await asyncio.shield(task)


# Deliveries whose caller was cancelled: referenced here until they finish (the
# event loop keeps only weak references to tasks).
_UNDER_WAY: set[asyncio.Task[Outcome]] = set()


def _finished(task: asyncio.Task[Outcome]) -> None:
    _UNDER_WAY.discard(task)
    if not task.cancelled() and (exc := task.exception()) is not None:
        # Seen by the caller too unless it was cancelled; then this is the only trace.
        LOGGER.warning("delivery failed: %r", exc)


async def _counted(
    command: SendNotification, envelope: Envelope, delivery: Awaitable[Outcome]
) -> Outcome:
    """The delivery's outcome, counted."""
    outcome = await delivery
    OUTCOMES.labels(command.kind.value, LABELS[type(outcome)]).inc()
    if isinstance(outcome, Delivered) and envelope.time is not None:
        END_TO_END.labels(command.kind.value).observe(
            (datetime.now(UTC) - envelope.time).total_seconds()
        )
    return outcome


async def _deliver(
    command: SendNotification,
    envelope: Envelope,
    attempt: int,
    uow: NotificationUnitOfWork,
    mailer: Mailer,
) -> Outcome:
    # One delivery per message id, even for two copies handled at the same time
    # (prefetch lets several run concurrently): the insert is the lock. A copy's
    # inbox insert waits on the first copy's uncommitted row until that
    # transaction ends, then finds it (committed: a duplicate) or writes its own
    # (rolled back). The delivery history, kept longer than the inbox, catches a
    # copy whose inbox row was purged; its own inbox row then rolls back.
    kind, recipient, subject = command.kind.value, command.recipient, command.subject
    order_id = order_of(kind, envelope.subject)
    delivery = Delivery(envelope.id, kind, recipient, subject, attempt, order_id)
    async with uow:
        new = await uow.first_delivery(CONSUMER, envelope)
        if not (new and await uow.deliveries.add_if_new(delivery)):
            DUPLICATES.labels(CONSUMER).inc()
            return Duplicate()  # not committed: nothing recorded
        try:
            await mailer.send(str(envelope.id), command)
        except PermanentDeliveryError as exc:
            return POLICY.after_permanent_failure(exc.reason)  # not sent: rolled back
        except TemporaryDeliveryError as exc:
            return POLICY.after_temporary_failure(attempt, exc.reason)
        uow.announce(notices.mail_sent(kind, attempt, order_id))
        await uow.commit()
    return Delivered()


async def deliveries_of_orders(
    order_ids: list[uuid.UUID], uow: NotificationUnitOfWork
) -> list[DeliveryRecord]:
    """A read: the mails about these orders that went out (GET /deliveries)."""
    async with uow:
        return await uow.deliveries.of_orders(order_ids)
