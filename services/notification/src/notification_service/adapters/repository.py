"""The delivery history: what the service layer needs (`DeliveriesRepository`)
and its SQLAlchemy implementation (`SqlDeliveriesRepository`)."""

from __future__ import annotations

import uuid
from typing import Protocol

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.adapters.orm import deliveries
from notification_service.domain.model import Delivery


class DeliveriesRepository(Protocol):
    """One row per mail that went out, kept DELIVERY_HISTORY_RETENTION_DAYS
    (longer than the inbox)."""

    async def delivered(self, message_id: uuid.UUID) -> bool: ...

    async def add(self, delivery: Delivery) -> None: ...


class SqlDeliveriesRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def delivered(self, message_id: uuid.UUID) -> bool:
        found = await self.session.execute(
            select(deliveries.c.message_id).where(deliveries.c.message_id == message_id)
        )
        return found.first() is not None

    async def add(self, delivery: Delivery) -> None:
        """Written before the mail goes out: a value the database refuses (a NUL
        character, an attempt count beyond its column) fails the delivery before
        anything is sent."""
        await self.session.execute(
            insert(deliveries).values(
                message_id=delivery.message_id,
                kind=delivery.kind,
                recipient=delivery.recipient,
                subject=delivery.subject,
                attempts=delivery.attempts,
            )
        )
