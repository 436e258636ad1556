"""An in-memory point database and the unit of work over it: what the handlers
see through `PointsUnitOfWork`, without PostgreSQL.

`FakeDatabase` is the committed state (balances, ledger, inbox, outbox); a
`FakeUnitOfWork` works on a copy of it and publishes the copy on commit, so
leaving without a commit (an error, a rejected command) changes nothing, as a
rolled-back transaction would. The two constraints of the real schema that
the handlers rely on are kept: one grant and one revoke per order, and no
negative balance."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from messaging.consumer import Envelope
from messaging.envelope import MessageContext, OutgoingMessage
from point_service.domain.model import Account, Entry, EntryKind
from point_service.service_layer.messages import collect


class ConstraintViolationError(Exception):
    """What PostgreSQL would refuse (an IntegrityError there)."""


@dataclass
class Tables:
    balances: dict[str, int] = field(default_factory=dict)
    ledger: list[Entry] = field(default_factory=list)
    # (consumer, message id)
    inbox: set[tuple[str, uuid.UUID]] = field(default_factory=set)


@dataclass
class FakeDatabase:
    committed: Tables = field(default_factory=Tables)
    # What the outbox relay would publish, in commit order.
    outbox: list[OutgoingMessage] = field(default_factory=list)
    # Raised by the next commits, one each: ConnectionRefusedError is the
    # database going away between the work and its commit.
    failures: list[BaseException] = field(default_factory=list)
    # Down: no unit of work can start (the connection is refused).
    down: bool = False
    opened: int = 0
    commits: int = 0

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


class FakeUnitOfWork:
    points: FakePointsRepository

    def __init__(self, db: FakeDatabase, context: MessageContext) -> None:
        self.db = db
        self.context = context

    async def __aenter__(self) -> Self:
        self.db.opened += 1
        if self.db.down:
            raise ConnectionRefusedError("the point database refuses connections")
        self.points = FakePointsRepository(copy.deepcopy(self.db.committed))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """What was not committed is dropped with the working copy."""

    async def first_delivery(self, consumer: str, envelope: Envelope) -> bool:
        key = (consumer, envelope.id)
        first = key not in self.points.tables.inbox
        self.points.tables.inbox.add(key)
        return first

    async def commit(self) -> None:
        if self.db.failures:
            raise self.db.failures.pop(0)
        messages = collect(self.points.seen, self.context)
        self.db.committed = copy.deepcopy(self.points.tables)
        self.db.outbox += messages
        self.db.commits += 1
