"""The point service's unit of work: inbox row, ledger rows, balance and outbox
rows commit together, or not at all."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from messaging.consumer import DUPLICATES, Envelope
from messaging.envelope import MessageContext
from messaging.inbox.store import first_delivery
from messaging.unit_of_work import UnitOfWork as BaseUnitOfWork
from point_service.adapters.orm import inbox, outbox
from point_service.adapters.repository import PointsRepository


class UnitOfWork(BaseUnitOfWork):
    points: PointsRepository

    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], context: MessageContext
    ) -> None:
        super().__init__(session_factory, outbox, context, name="point-db")

    def started(self) -> None:
        self.points = PointsRepository(self.session)

    async def first_delivery(self, consumer: str, envelope: Envelope) -> bool:
        """Record the message in the inbox; False (and counted) for a redelivery."""
        first = await first_delivery(self.session, inbox, consumer, envelope.id, envelope.type)
        if not first:
            DUPLICATES.labels(consumer).inc()
        return first
