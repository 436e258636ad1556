"""The notification service's unit of work: one transaction that holds the
message's lock, reads the inbox and the delivery history, and records the
delivery, committed once the mail went out, or not at all.

`NotificationUnitOfWork` is what the handlers use; `UnitOfWork` is its
PostgreSQL implementation (tests/unit/notification/fakes.py has an in-memory
one). There is no outbox: the service sends mail, not messages; the retries
and the parking lot are the door's (entrypoints/consumers.py)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Protocol, Self

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from messaging.consumer import Envelope
from messaging.inbox.store import first_delivery
from messaging.transaction import Transaction
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


class Transactions(Protocol):
    """What opens a database transaction: an `async_sessionmaker`, whose
    `begin()` commits on a clean exit and rolls back on an error."""

    def begin(self) -> AbstractAsyncContextManager[AsyncSession]: ...


class _LeftWithoutCommitError(Exception):
    """Thrown into the transaction of a unit of work left without a commit: it
    rolls back."""


class UnitOfWork:
    deliveries: SqlDeliveriesRepository
    lock: AdvisoryMessageLock

    def __init__(self, transactions: Transactions) -> None:
        self.transactions = transactions
        self._transaction: AbstractAsyncContextManager[AsyncSession] | None = None

    async def __aenter__(self) -> Self:
        transaction = self.transactions.begin()
        self.session = await transaction.__aenter__()
        self._transaction = transaction
        self.deliveries = SqlDeliveriesRepository(self.session)
        self.lock = AdvisoryMessageLock(self.session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        transaction, self._transaction = self._transaction, None
        if transaction is not None:
            # The error, or one of our own: the transaction rolls back.
            error = exc or _LeftWithoutCommitError("left without a commit")
            await transaction.__aexit__(type(error), error, tb)

    async def in_inbox(self, consumer: str, envelope: Envelope) -> bool:
        found = await self.session.execute(
            select(inbox.c.message_id).where(
                inbox.c.consumer == consumer, inbox.c.message_id == envelope.id
            )
        )
        return found.first() is not None

    async def first_delivery(self, consumer: str, envelope: Envelope) -> bool:
        """Record the message in the inbox; False if it was there already."""
        return await first_delivery(self.session, inbox, consumer, envelope.id, envelope.type)

    async def commit(self) -> None:
        transaction, self._transaction = self._transaction, None
        if transaction is not None:
            await transaction.__aexit__(None, None, None)
