"""Delivering one SendNotification: deduplicate, record, send, commit.

The mail goes out before the delivery record commits (both inside one
transaction that holds a lock on the message id): if the process dies in
between, the redelivered command sends the mail again (at-least-once; the
mail's Message-ID is the command id, the same on every resend, so that mail
stores and clients show the duplicate once).
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
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import Counter, Histogram
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalogue.contracts.notifications import NotificationKind, SendNotification
from catalogue.topology import NOTIFICATION_RETRY_DELAYS_S
from messaging.consumer import DUPLICATES, Envelope
from messaging.inbox.store import first_delivery
from notification_service.adapters.mailer import (
    PermanentDeliveryError,
    SmtpMailer,
    TemporaryDeliveryError,
)
from notification_service.adapters.orm import deliveries, inbox

LOGGER = logging.getLogger(__name__)
CONSUMER = "notification-service.send"
# Attempts in all: the first, then one per retry delay.
MAX_ATTEMPTS = len(NOTIFICATION_RETRY_DELAYS_S) + 1

OUTCOMES = Counter(
    "notification_deliveries_total",
    "Outcome of each SendNotification delivery attempt (delivered, duplicate, retry, parked).",
    ["kind", "outcome"],
)


@dataclass(frozen=True)
class Delivered:
    pass


@dataclass(frozen=True)
class Duplicate:
    pass


@dataclass(frozen=True)
class RetryLater:
    next_attempt: int
    reason: str


@dataclass(frozen=True)
class Park:
    reason: str


Outcome = Delivered | Duplicate | RetryLater | Park
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


async def already_delivered(session: AsyncSession, envelope: Envelope) -> bool:
    """In the inbox, or in the delivery history, which is kept longer: a copy
    that arrives after its inbox row was purged still mails nothing."""
    found = await session.execute(
        select(inbox.c.message_id).where(
            inbox.c.consumer == CONSUMER, inbox.c.message_id == envelope.id
        )
    )
    if found.first() is not None:
        return True
    delivered = await session.execute(
        select(deliveries.c.message_id).where(deliveries.c.message_id == envelope.id)
    )
    return delivered.first() is not None


async def deliver(
    command: SendNotification,
    envelope: Envelope,
    attempt: int,
    sessions: async_sessionmaker[AsyncSession],
    mailer: SmtpMailer,
) -> Outcome:
    """Deliver once; a cancelled caller (the message stays unacked and comes back)
    does not cancel a delivery under way, which finishes and records itself."""
    task = asyncio.ensure_future(_deliver_and_count(command, envelope, attempt, sessions, mailer))
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


async def _deliver_and_count(
    command: SendNotification,
    envelope: Envelope,
    attempt: int,
    sessions: async_sessionmaker[AsyncSession],
    mailer: SmtpMailer,
) -> Outcome:
    outcome = await _deliver(command, envelope, attempt, sessions, mailer)
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
    sessions: async_sessionmaker[AsyncSession],
    mailer: SmtpMailer,
) -> Outcome:
    # One delivery per message id, even for two copies handled at the same time
    # (prefetch lets several run concurrently): the transaction-scoped advisory
    # lock on the id makes a concurrent copy wait, then find the first one's record.
    try:
        async with sessions.begin() as session:
            await session.execute(select(func.pg_advisory_xact_lock(lock_key(envelope.id))))
            if await already_delivered(session, envelope):
                DUPLICATES.labels(CONSUMER).inc()
                return Duplicate()
            await first_delivery(session, inbox, CONSUMER, envelope.id, envelope.type)
            await session.execute(
                insert(deliveries).values(
                    message_id=envelope.id,
                    kind=command.kind.value,
                    recipient=command.recipient,
                    subject=command.subject,
                    attempts=attempt,
                )
            )
            try:
                await mailer.send(str(envelope.id), command)
            except PermanentDeliveryError as exc:
                raise _NotSentError(Park(f"permanent SMTP failure: {exc.reason}")) from exc
            except TemporaryDeliveryError as exc:
                if attempt >= MAX_ATTEMPTS:
                    later: Park | RetryLater = Park(
                        f"still failing after {attempt} attempts: {exc.reason}"
                    )
                else:
                    later = RetryLater(attempt + 1, exc.reason)
                raise _NotSentError(later) from exc
    except _NotSentError as not_sent:
        return not_sent.outcome
    return Delivered()


class _NotSentError(Exception):
    """The mail did not go out: the delivery's record is rolled back."""

    def __init__(self, outcome: Park | RetryLater) -> None:
        super().__init__(outcome)
        self.outcome = outcome


def lock_key(message_id: uuid.UUID) -> int:
    """A signed 64-bit advisory lock key from the message id."""
    return (message_id.int & 0xFFFF_FFFF_FFFF_FFFF) - (1 << 63)
