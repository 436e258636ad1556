"""An in-memory notification database, the unit of work over it and a mailer:
what the handler sees through `NotificationUnitOfWork` and `Mailer`, without
PostgreSQL and without an SMTP server.

`FakeDatabase` is the committed state (the delivery history and the inbox); a
`FakeUnitOfWork` keeps its writes aside and adds them on commit, so leaving
without a commit (a mail not sent, an error) changes nothing, as a rolled-back
transaction would. Its inserts are PostgreSQL's INSERT ... ON CONFLICT DO
NOTHING under READ COMMITTED: an insert of a row (table and key) that another
open unit of work wrote and has not committed waits until that one ends,
then sees the committed state: the row is there (nothing inserted) if it
committed, absent (inserted) if it rolled back. That wait is the only lock
the handler has. The tables' primary keys are kept: one inbox row per
(consumer, message id), one delivery record per message id."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from catalogue.contracts.activity import ActivityNotice
from catalogue.contracts.notifications import SendNotification
from messaging.activity import Notice, traced
from messaging.consumer import Envelope
from notification_service.adapters.mailer import DeliveryError
from notification_service.domain.model import Delivery, DeliveryRecord


@dataclass
class Tables:
    deliveries: dict[uuid.UUID, Delivery] = field(default_factory=dict)
    # (consumer, message id)
    inbox: set[tuple[str, uuid.UUID]] = field(default_factory=set)

    def has(self, table: str, key: Hashable) -> bool:
        rows: dict[uuid.UUID, Delivery] | set[tuple[str, uuid.UUID]] = getattr(self, table)
        return key in rows


@dataclass
class FakeDatabase:
    committed: Tables = field(default_factory=Tables)
    # Raised by the next units of work as they open, one each:
    # ConnectionRefusedError is the database being unavailable.
    refusals: list[BaseException] = field(default_factory=list)
    # Raised by the next commits, one each.
    failures: list[BaseException] = field(default_factory=list)
    # The rows written and not yet committed, by (table, key): the transaction
    # that holds each (PostgreSQL's lock on a row it inserted).
    uncommitted: dict[tuple[str, Hashable], FakeTransaction] = field(default_factory=dict)
    opened: int = 0
    commits: int = 0
    # The activity notices published after their commits, in commit order.
    announced: list[ActivityNotice] = field(default_factory=list)

    def unit_of_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    @property
    def deliveries(self) -> dict[uuid.UUID, Delivery]:
        return self.committed.deliveries

    @property
    def inbox(self) -> set[tuple[str, uuid.UUID]]:
        return self.committed.inbox


class FakeTransaction:
    """One unit of work's hold on the rows it wrote, until it ends."""

    def __init__(self, db: FakeDatabase) -> None:
        self.db = db
        self.ended = asyncio.Event()

    async def insert(self, table: str, key: Hashable) -> bool:
        """INSERT ... ON CONFLICT DO NOTHING RETURNING: wait while another open
        transaction holds the row uncommitted; then True, holding the row, if
        neither the committed state nor this transaction has it."""
        row = (table, key)
        holder = self.db.uncommitted.get(row)
        while holder is not None and holder is not self:
            await holder.ended.wait()
            holder = self.db.uncommitted.get(row)
        if row in self.db.uncommitted or self.db.committed.has(table, key):
            return False
        self.db.uncommitted[row] = self
        return True

    def end(self) -> None:
        """Committed or rolled back: the rows are released, waiters go on."""
        for row in [row for row, holder in self.db.uncommitted.items() if holder is self]:
            del self.db.uncommitted[row]
        self.ended.set()


class FakeDeliveriesRepository:
    def __init__(self, db: FakeDatabase, transaction: FakeTransaction | None = None) -> None:
        self.db = db
        self.transaction = transaction or FakeTransaction(db)
        self.added: dict[uuid.UUID, Delivery] = {}

    async def add_if_new(self, delivery: Delivery) -> bool:
        if not await self.transaction.insert("deliveries", delivery.message_id):
            return False
        self.added[delivery.message_id] = delivery
        return True

    async def of_orders(self, order_ids: list[uuid.UUID]) -> list[DeliveryRecord]:
        """Delivered "now": the fake keeps no time."""
        return [
            DeliveryRecord(d, datetime.now(UTC))
            for d in self.db.deliveries.values()
            if d.order_id is not None and d.order_id in order_ids
        ]


class FakeUnitOfWork:
    deliveries: FakeDeliveriesRepository

    def __init__(self, db: FakeDatabase) -> None:
        self.db = db
        self.transaction = FakeTransaction(db)
        self.inbox_added: set[tuple[str, uuid.UUID]] = set()
        self.announcing: list[ActivityNotice] = []

    async def __aenter__(self) -> Self:
        self.db.opened += 1
        if self.db.refusals:
            raise self.db.refusals.pop(0)
        self.transaction = FakeTransaction(self.db)
        self.deliveries = FakeDeliveriesRepository(self.db, self.transaction)
        self.inbox_added = set()
        self.announcing = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """What was not committed is dropped, and its rows released."""
        self.announcing = []
        self.transaction.end()

    async def first_delivery(self, consumer: str, envelope: Envelope) -> bool:
        key = (consumer, envelope.id)
        if not await self.transaction.insert("inbox", key):
            return False
        self.inbox_added.add(key)
        return True

    async def commit(self) -> None:
        if self.db.failures:
            raise self.db.failures.pop(0)
        self.db.deliveries.update(self.deliveries.added)
        self.db.inbox.update(self.inbox_added)
        self.deliveries.added, self.inbox_added = {}, set()
        self.db.commits += 1
        self.db.announced += self.announcing
        self.announcing = []
        self.transaction.end()

    def announce(self, notice: Notice) -> None:
        assert isinstance(notice, ActivityNotice)
        self.announcing.append(traced(notice))


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
