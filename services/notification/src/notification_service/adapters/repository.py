"""The delivery history: what the service layer needs (`DeliveriesRepository`)
and its SQLAlchemy implementation (`SqlDeliveriesRepository`)."""

from __future__ import annotations

import uuid
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.adapters.orm import deliveries
from notification_service.domain.model import Delivery, DeliveryRecord


class DeliveriesRepository(Protocol):
    """One row per mail that went out, kept DELIVERY_HISTORY_RETENTION_DAYS
    (longer than the inbox)."""

    async def add_if_new(self, delivery: Delivery) -> bool:
        """Record the delivery; False, recording nothing, if its message id is
        in the history already (the mail went out)."""

    async def of_orders(self, order_ids: list[uuid.UUID]) -> list[DeliveryRecord]:
        """The mails about these orders that went out, oldest first."""


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
                order_id=delivery.order_id,
            )
            .on_conflict_do_nothing(index_elements=[deliveries.c.message_id])
            .returning(deliveries.c.message_id)
        )
        return result.first() is not None

    async def of_orders(self, order_ids: list[uuid.UUID]) -> list[DeliveryRecord]:
        """Index deliveries_order_id."""
        rows = await self.session.execute(
            select(deliveries)
            .where(deliveries.c.order_id.in_(order_ids))
            .order_by(deliveries.c.delivered_at)
        )
        return [
            DeliveryRecord(
                Delivery(r.message_id, r.kind, r.recipient, r.subject, r.attempts, r.order_id),
                r.delivered_at,
            )
            for r in rows
        ]
