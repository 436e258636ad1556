"""The point service's unit of work: inbox row, ledger rows, balance and outbox
rows commit together, or not at all.

`PointsUnitOfWork` is what the handlers use; `UnitOfWork` is its PostgreSQL
implementation (tests/unit/point/fakes.py has an in-memory one)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from messaging.consumer import DUPLICATES, Envelope
from messaging.envelope import MessageContext, OutgoingMessage
from messaging.inbox.store import first_delivery
from messaging.transaction import Transaction
from messaging.unit_of_work import UnitOfWork as BaseUnitOfWork
from point_service.adapters import orm
from point_service.adapters.repository import PointsRepository, SqlPointsRepository
from point_service.service_layer.messages import collect


class PointsUnitOfWork(Transaction, Protocol):
    """One transaction (messaging.transaction) over the balances and the ledger,
    with the inbox that makes a redelivered message a no-op."""

    @property
    def points(self) -> PointsRepository: ...

    async def first_delivery(self, consumer: str, envelope: Envelope) -> bool: ...


# How a door opens a unit of work for a message: given the context of the
# messages it may send.
UnitOfWorkFactory = Callable[[MessageContext], PointsUnitOfWork]


class UnitOfWork(BaseUnitOfWork):
    points: SqlPointsRepository

    outbox = orm.outbox
    name = "point-db"

    def started(self) -> None:
        self.points = SqlPointsRepository(self.session)

    async def first_delivery(self, consumer: str, envelope: Envelope) -> bool:
        """Record the message in the inbox; False (and counted) for a redelivery."""
        first = await first_delivery(self.session, orm.inbox, consumer, envelope.id, envelope.type)
        if not first:
            DUPLICATES.labels(consumer).inc()
        return first

    def collect_messages(self) -> list[OutgoingMessage]:
        return collect(self.points.seen, self.context)
