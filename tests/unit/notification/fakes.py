"""An in-memory notification database, the unit of work over it and a mailer:
what the handler sees through `NotificationUnitOfWork` and `Mailer`, without
PostgreSQL and without an SMTP server.

`FakeDatabase` is the committed state (the delivery history and the inbox); a
`FakeUnitOfWork` keeps its writes aside and adds them on commit, so leaving
without a commit (a mail not sent, an error) changes nothing, as a rolled-back
transaction would. Its reads see what is committed when they run, as
PostgreSQL's READ COMMITTED does: a copy that waited for the message's lock
finds the record the first copy committed. The lock is held until the unit of
work ends, as the transaction-scoped advisory lock is. The delivery history's
primary key is kept: one record per message id."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from catalogue.contracts.notifications import SendNotification
from messaging.consumer import Envelope
from notification_service.adapters.mailer import DeliveryError
from notification_service.domain.model import Delivery


class ConstraintViolationError(Exception):
    """What PostgreSQL would refuse (an IntegrityError there)."""


@dataclass
class Tables:
    deliveries: dict[uuid.UUID, Delivery] = field(default_factory=dict)
    # (consumer, message id)
    inbox: set[tuple[str, uuid.UUID]] = field(default_factory=set)


@dataclass
class FakeDatabase:
    committed: Tables = field(default_factory=Tables)
    # Raised by the next units of work as they open, one each:
    # ConnectionRefusedError is the database being unavailable.
    refusals: list[BaseException] = field(default_factory=list)
    # Raised by the next commits, one each.
    failures: list[BaseException] = field(default_factory=list)
    # The message locks (PostgreSQL's advisory locks), by message id.
    locks: defaultdict[uuid.UUID, asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock)
    )
    opened: int = 0
    commits: int = 0

    def unit_of_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    @property
    def deliveries(self) -> dict[uuid.UUID, Delivery]:
        return self.committed.deliveries

    @property
    def inbox(self) -> set[tuple[str, uuid.UUID]]:
        return self.committed.inbox


class FakeDeliveriesRepository:
    def __init__(self, db: FakeDatabase) -> None:
        self.db = db
        self.added: dict[uuid.UUID, Delivery] = {}

    async def delivered(self, message_id: uuid.UUID) -> bool:
        return message_id in self.db.deliveries or message_id in self.added

    async def add(self, delivery: Delivery) -> None:
        if await self.delivered(delivery.message_id):
            raise ConstraintViolationError("deliveries_pkey")
        self.added[delivery.message_id] = delivery


class FakeMessageLock:
    def __init__(self, db: FakeDatabase) -> None:
        self.db = db
        self.held: list[asyncio.Lock] = []

    async def hold(self, message_id: uuid.UUID) -> None:
        lock = self.db.locks[message_id]
        await lock.acquire()
        self.held.append(lock)

    def release(self) -> None:
        while self.held:
            self.held.pop().release()


class FakeUnitOfWork:
    deliveries: FakeDeliveriesRepository
    lock: FakeMessageLock

    def __init__(self, db: FakeDatabase) -> None:
        self.db = db
        self.inbox_added: set[tuple[str, uuid.UUID]] = set()

    async def __aenter__(self) -> Self:
        self.db.opened += 1
        if self.db.refusals:
            raise self.db.refusals.pop(0)
        self.deliveries = FakeDeliveriesRepository(self.db)
        self.lock = FakeMessageLock(self.db)
        self.inbox_added = set()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """What was not committed is dropped; the lock goes with the transaction."""
        self.lock.release()

    async def in_inbox(self, consumer: str, envelope: Envelope) -> bool:
        key = (consumer, envelope.id)
        return key in self.db.inbox or key in self.inbox_added

    async def first_delivery(self, consumer: str, envelope: Envelope) -> bool:
        first = not await self.in_inbox(consumer, envelope)
        self.inbox_added.add((consumer, envelope.id))
        return first

    async def commit(self) -> None:
        if self.db.failures:
            raise self.db.failures.pop(0)
        self.db.deliveries.update(self.deliveries.added)
        self.db.inbox.update(self.inbox_added)
        self.deliveries.added, self.inbox_added = {}, set()
        self.db.commits += 1


@dataclass
class FakeMailer:
    """Accepts every mail, or refuses the next ones with `refusals` (the
    SmtpMailer's TemporaryDeliveryError or PermanentDeliveryError). Held, it
    waits after accepting a mail until released: the moment between the SMTP
    server's acceptance and the delivery's commit."""

    sent: list[tuple[str, SendNotification]] = field(default_factory=list)
    refusals: list[DeliveryError] = field(default_factory=list)
    accepted: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event | None = None

    async def send(self, message_id: str, command: SendNotification) -> None:
        if self.refusals:
            raise self.refusals.pop(0)
        self.sent.append((message_id, command))
        self.accepted.set()
        if self.released is not None:
            await self.released.wait()

    def hold(self) -> None:
        self.released = asyncio.Event()

    def release(self) -> None:
        if self.released is not None:
            self.released.set()
