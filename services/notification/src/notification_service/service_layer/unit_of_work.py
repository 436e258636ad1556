"""The notification service's unit of work: one transaction that records the
message in the inbox and the delivery in its history, committed once the mail
went out, or not at all.

The inbox insert is the lock on the message id: a concurrent copy's insert of
the same row waits for this transaction to end (READ COMMITTED), then finds
the row if it committed, or writes its own if it rolled back.

`NotificationUnitOfWork` is what the handlers use; `UnitOfWork` is its
PostgreSQL implementation (tests/unit/notification/fakes.py has an in-memory
one), a messaging.unit_of_work.SessionTransaction. There is no outbox: the
service sends mail, not messages; the retries and the parking lot are the
door's (entrypoints/consumers.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from messaging.consumer import Envelope
from messaging.inbox.store import first_delivery
from messaging.transaction import Transaction
from messaging.unit_of_work import SessionTransaction
from notification_service.adapters.orm import inbox
from notification_service.adapters.repository import (
    DeliveriesRepository,
    SqlDeliveriesRepository,
)


class NotificationUnitOfWork(Transaction, Protocol):
    """One transaction (messaging.transaction): `commit()` makes the delivery's
    record durable; leaving without a commit undoes everything. Either way a
    concurrent copy waiting on its inbox row goes on when it ends."""

    @property
    def deliveries(self) -> DeliveriesRepository: ...

    async def first_delivery(self, consumer: str, envelope: Envelope) -> bool: ...


# How a door opens a unit of work for a message.
UnitOfWorkFactory = Callable[[], NotificationUnitOfWork]


class UnitOfWork(SessionTransaction):
    deliveries: SqlDeliveriesRepository

    def started(self) -> None:
        self.deliveries = SqlDeliveriesRepository(self.session)

    async def first_delivery(self, consumer: str, envelope: Envelope) -> bool:
        """Record the message in the inbox; False if it was there already, once
        a transaction that holds the same row uncommitted has ended."""
        return await first_delivery(self.session, inbox, consumer, envelope.id, envelope.type)
