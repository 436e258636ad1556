"""The notification service's unit of work: one transaction that holds the
message's lock, reads the inbox and the delivery history, and records the
delivery, committed once the mail went out, or not at all.

`NotificationUnitOfWork` is what the handlers use; `UnitOfWork` is its
PostgreSQL implementation (tests/unit/notification/fakes.py has an in-memory
one), a messaging.unit_of_work.SessionTransaction. There is no outbox: the
service sends mail, not messages; the retries and the parking lot are the
door's (entrypoints/consumers.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from messaging.consumer import Envelope
from messaging.inbox.store import already_delivered, first_delivery
from messaging.transaction import Transaction
from messaging.unit_of_work import SessionTransaction
from notification_service.adapters.lock import AdvisoryMessageLock, MessageLock
from notification_service.adapters.orm import inbox
from notification_service.adapters.repository import (
    DeliveriesRepository,
    SqlDeliveriesRepository,
)


class NotificationUnitOfWork(Transaction, Protocol):
    """One transaction (messaging.transaction): `commit()` makes the delivery's
    record durable; leaving without a commit undoes everything. Either way the
    message's lock is released when it ends."""

    @property
    def deliveries(self) -> DeliveriesRepository: ...

    @property
    def lock(self) -> MessageLock: ...

    async def in_inbox(self, consumer: str, envelope: Envelope) -> bool: ...

    async def first_delivery(self, consumer: str, envelope: Envelope) -> bool: ...


# How a door opens a unit of work for a message.
UnitOfWorkFactory = Callable[[], NotificationUnitOfWork]


class UnitOfWork(SessionTransaction):
    deliveries: SqlDeliveriesRepository
    lock: AdvisoryMessageLock

    def started(self) -> None:
        self.deliveries = SqlDeliveriesRepository(self.session)
        self.lock = AdvisoryMessageLock(self.session)

    async def in_inbox(self, consumer: str, envelope: Envelope) -> bool:
        return await already_delivered(self.session, inbox, consumer, envelope.id)

    async def first_delivery(self, consumer: str, envelope: Envelope) -> bool:
        """Record the message in the inbox; False if it was there already."""
        return await first_delivery(self.session, inbox, consumer, envelope.id, envelope.type)
