"""The delivery history: what the service layer needs (`DeliveriesRepository`)
and its SQLAlchemy implementation (`SqlDeliveriesRepository`)."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.adapters.orm import deliveries
from notification_service.domain.model import Delivery


class DeliveriesRepository(Protocol):
    """One row per mail that went out, kept DELIVERY_HISTORY_RETENTION_DAYS
    (longer than the inbox)."""

    async def add_if_new(self, delivery: Delivery) -> bool:
        """Record the delivery; False, recording nothing, if its message id is
        in the history already (the mail went out)."""


class SqlDeliveriesRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_if_new(self, delivery: Delivery) -> bool:
        """One INSERT ... ON CONFLICT (message_id) DO NOTHING RETURNING: no row
        back is a message id already delivered. Written before the mail goes
        out: a value the database refuses (a NUL character, an attempt count
        beyond its column) fails the delivery before anything is sent."""
        result = await self.session.execute(
            insert(deliveries)
            .values(
                message_id=delivery.message_id,
                kind=delivery.kind,
                recipient=delivery.recipient,
                subject=delivery.subject,
                attempts=delivery.attempts,
            )
            .on_conflict_do_nothing(index_elements=[deliveries.c.message_id])
            .returning(deliveries.c.message_id)
        )
        return result.first() is not None
