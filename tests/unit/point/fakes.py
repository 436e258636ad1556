"""An in-memory point database and the unit of work over it: what the handlers
see through `PointsUnitOfWork`, without PostgreSQL (the transaction itself is
tests/support/fake_database.py's: a copy of the balances, ledger and inbox,
published with the outbox messages on commit, dropped otherwise).

The two constraints of the real schema that the handlers rely on are kept: one
grant and one revoke per order, and no negative balance."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from messaging.consumer import Envelope
from messaging.envelope import MessageContext, OutgoingMessage
from point_service.domain.model import Account, Entry, EntryKind, OrderEntry
from point_service.service_layer.messages import collect
from tests.support.fake_database import FakeStore, FakeTransaction


class ConstraintViolationError(Exception):
    """What PostgreSQL would refuse (an IntegrityError there)."""


@dataclass
class Tables:
    balances: dict[str, int] = field(default_factory=dict)
    ledger: list[Entry] = field(default_factory=list)
    # (consumer, message id)
    inbox: set[tuple[str, uuid.UUID]] = field(default_factory=set)


@dataclass
class FakeDatabase(FakeStore[Tables]):
    committed: Tables = field(default_factory=Tables)

    def unit_of_work(self, context: MessageContext) -> FakeUnitOfWork:
        return FakeUnitOfWork(self, context)

    @property
    def balances(self) -> dict[str, int]:
        return self.committed.balances

    @property
    def ledger(self) -> list[Entry]:
        return self.committed.ledger

    @property
    def inbox(self) -> set[tuple[str, uuid.UUID]]:
        return self.committed.inbox


class FakePointsRepository:
    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self.seen: list[Account] = []

    async def lock_account(self, customer_id: str) -> Account:
        account = Account(customer_id, self.tables.balances.setdefault(customer_id, 0))
        self.seen.append(account)
        return account

    async def save(self, account: Account) -> None:
        if account.balance < 0:
            raise ConstraintViolationError("point_balances_not_negative")
        self.tables.balances[account.customer_id] = account.balance
        for entry in account.entries:
            if (
                entry.order_id is not None
                and await self.entry_for_order(entry.order_id, entry.kind) is not None
            ):
                raise ConstraintViolationError("point_ledger_one_per_order")
            self.tables.ledger.append(entry)
        account.entries.clear()

    async def entry_for_order(self, order_id: uuid.UUID, kind: EntryKind) -> int | None:
        return next(
            (e.points for e in self.tables.ledger if e.order_id == order_id and e.kind == kind),
            None,
        )

    async def balance(self, customer_id: str) -> int:
        return self.tables.balances.get(customer_id, 0)

    async def entries_of_orders(self, order_ids: list[uuid.UUID]) -> list[OrderEntry]:
        """Booked "now": the fake keeps no time."""
        return [
            OrderEntry(e.order_id, e.customer_id, e.kind, e.points, datetime.now(UTC))
            for e in self.tables.ledger
            if e.order_id is not None and e.order_id in order_ids
        ]


class FakeUnitOfWork(FakeTransaction[Tables]):
    points: FakePointsRepository

    def started(self) -> None:
        self.points = FakePointsRepository(self.tables)

    async def first_delivery(self, consumer: str, envelope: Envelope) -> bool:
        key = (consumer, envelope.id)
        first = key not in self.tables.inbox
        self.tables.inbox.add(key)
        return first

    def collect_messages(self) -> list[OutgoingMessage]:
        return collect(self.points.seen, self.context)
