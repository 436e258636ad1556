"""Points persistence through a SQLAlchemy session."""

from __future__ import annotations

import uuid

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from point_service.adapters.orm import balances, ledger
from point_service.domain.model import Account, EntryKind


class PointsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_account(self, customer_id: str) -> Account:
        """The customer's account under its row lock: writers of one customer are
        serialized, which keeps their outbox rows (keyed by customer) in order."""
        await self.session.execute(
            pg_insert(balances).values(customer_id=customer_id, balance=0).on_conflict_do_nothing()
        )
        balance = (
            await self.session.execute(
                select(balances.c.balance)
                .where(balances.c.customer_id == customer_id)
                .with_for_update()
            )
        ).scalar_one()
        return Account(customer_id, balance)

    async def save(self, account: Account) -> None:
        await self.session.execute(
            update(balances)
            .where(balances.c.customer_id == account.customer_id)
            .values(balance=account.balance, updated_at=func.now())
        )

    async def entry_for_order(self, order_id: uuid.UUID, kind: EntryKind) -> int | None:
        """Points of the order's entry of that kind, or None when there is none."""
        return (
            await self.session.execute(
                select(ledger.c.points).where(ledger.c.order_id == order_id, ledger.c.kind == kind)
            )
        ).scalar_one_or_none()

    async def append(
        self,
        customer_id: str,
        kind: EntryKind,
        points: int,
        reason: str,
        message_id: uuid.UUID,
        order_id: uuid.UUID | None = None,
    ) -> None:
        await self.session.execute(
            insert(ledger).values(
                customer_id=customer_id,
                order_id=order_id,
                kind=kind.value,
                points=points,
                reason=reason,
                message_id=message_id,
            )
        )

    async def balance(self, customer_id: str) -> int:
        value = (
            await self.session.execute(
                select(balances.c.balance).where(balances.c.customer_id == customer_id)
            )
        ).scalar_one_or_none()
        return value or 0
