"""Points persistence: what the service layer needs (`PointsRepository`) and
its SQLAlchemy implementation (`SqlPointsRepository`)."""

from __future__ import annotations

import uuid
from typing import Protocol

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from point_service.adapters.orm import balances, ledger
from point_service.domain.model import Account, Entry, EntryKind, OrderEntry


class PointsRepository(Protocol):
    """Balances and the ledger, as the handlers use them. `save` stores an
    account's balance and the entries it booked. An account read with
    `lock_account` is remembered, so that the unit of work can turn its domain
    events into messages at commit."""

    async def lock_account(self, customer_id: str) -> Account: ...

    async def save(self, account: Account) -> None: ...

    async def entry_for_order(self, order_id: uuid.UUID, kind: EntryKind) -> int | None: ...

    async def balance(self, customer_id: str) -> int: ...

    async def entries_of_orders(self, order_ids: list[uuid.UUID]) -> list[OrderEntry]: ...


class SqlPointsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.seen: list[Account] = []

    async def lock_account(self, customer_id: str) -> Account:
        """The customer's account under its row lock: writers of one customer are
        serialized, which keeps their outbox rows (keyed by customer) in order.
        One statement: the insert creates the row, or its conflict's no-op
        update locks the existing one and returns its balance."""
        new = pg_insert(balances).values(customer_id=customer_id, balance=0)
        balance = (
            await self.session.execute(
                new.on_conflict_do_update(
                    index_elements=[balances.c.customer_id],
                    set_={"customer_id": new.excluded.customer_id},
                ).returning(balances.c.balance)
            )
        ).scalar_one()
        account = Account(customer_id, balance)
        self.seen.append(account)
        return account

    async def save(self, account: Account) -> None:
        await self.session.execute(
            update(balances)
            .where(balances.c.customer_id == account.customer_id)
            .values(balance=account.balance, updated_at=func.now())
        )
        while account.entries:
            await self._append(account.entries.pop(0))

    async def entry_for_order(self, order_id: uuid.UUID, kind: EntryKind) -> int | None:
        """Points of the order's entry of that kind, or None when there is none."""
        return (
            await self.session.execute(
                select(ledger.c.points).where(ledger.c.order_id == order_id, ledger.c.kind == kind)
            )
        ).scalar_one_or_none()

    async def _append(self, entry: Entry) -> None:
        """Ledger rows are only ever inserted."""
        await self.session.execute(
            insert(ledger).values(
                customer_id=entry.customer_id,
                order_id=entry.order_id,
                kind=entry.kind.value,
                points=entry.points,
                reason=entry.reason,
                message_id=entry.cause,
            )
        )

    async def balance(self, customer_id: str) -> int:
        value = (
            await self.session.execute(
                select(balances.c.balance).where(balances.c.customer_id == customer_id)
            )
        ).scalar_one_or_none()
        return value or 0

    async def entries_of_orders(self, order_ids: list[uuid.UUID]) -> list[OrderEntry]:
        """The orders' grants and revocations, oldest first (index
        point_ledger_one_per_order)."""
        rows = await self.session.execute(
            select(
                ledger.c.order_id,
                ledger.c.customer_id,
                ledger.c.kind,
                ledger.c.points,
                ledger.c.created_at,
            )
            .where(ledger.c.order_id.in_(order_ids))
            .order_by(ledger.c.id)
        )
        return [
            OrderEntry(r.order_id, r.customer_id, EntryKind(r.kind), r.points, r.created_at)
            for r in rows
        ]
