"""Order persistence: what the service layer needs (`OrderRepository`) and its
SQLAlchemy implementation (`SqlOrderRepository`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import RowMapping, Select, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from order_service.adapters.orm import order_lines, orders
from order_service.domain.model import Line, Order, OrderStatus


class OrderRepository(Protocol):
    """Orders, as the handlers use them. An order added, or read with
    `for_update`, is remembered, so that the unit of work can turn its domain
    events into messages at commit."""

    async def add(self, order: Order) -> None: ...

    async def get(self, order_id: uuid.UUID, *, for_update: bool = False) -> Order | None: ...

    async def list_by_customer(self, customer_id: str, limit: int) -> list[Order]: ...

    async def list_recent(self, limit: int) -> list[Order]: ...

    async def count_by_customer(self, customer_id: str) -> int: ...

    async def save_status(self, order: Order) -> None: ...


class SqlOrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.seen: list[Order] = []

    async def add(self, order: Order) -> None:
        await self.session.execute(
            insert(orders).values(
                id=order.id,
                customer_id=order.customer_id,
                customer_email=order.customer_email,
                currency=order.currency,
                total=order.total,
                status=order.status.value,
                created_at=order.created_at,
            )
        )
        await self.session.execute(
            insert(order_lines),
            [
                {
                    "order_id": order.id,
                    "line_no": n,
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "unit_price": line.unit_price,
                }
                for n, line in enumerate(order.lines)
            ],
        )
        self.seen.append(order)

    async def get(self, order_id: uuid.UUID, *, for_update: bool = False) -> Order | None:
        """`for_update` takes the order's row lock: writers of one order are
        serialized, which is what keeps its outbox rows in causal order."""
        query = select(orders).where(orders.c.id == order_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).mappings().one_or_none()
        if row is None:
            return None
        order = (await self._with_lines([row]))[0]
        if for_update:
            self.seen.append(order)
        return order

    async def list_by_customer(self, customer_id: str, limit: int) -> list[Order]:
        return await self._newest(select(orders).where(orders.c.customer_id == customer_id), limit)

    async def list_recent(self, limit: int) -> list[Order]:
        """Everyone's newest orders (index orders_created_at)."""
        return await self._newest(select(orders), limit)

    async def _newest(self, query: Select[Any], limit: int) -> list[Order]:
        newest = query.order_by(orders.c.created_at.desc()).limit(limit)
        rows = (await self.session.execute(newest)).mappings().all()
        return await self._with_lines(rows)

    async def count_by_customer(self, customer_id: str) -> int:
        return (
            await self.session.execute(
                select(func.count()).select_from(orders).where(orders.c.customer_id == customer_id)
            )
        ).scalar_one()

    async def save_status(self, order: Order) -> None:
        await self.session.execute(
            update(orders)
            .where(orders.c.id == order.id)
            .values(status=order.status.value, cancelled_at=order.cancelled_at)
        )

    async def _with_lines(self, rows: Sequence[RowMapping]) -> list[Order]:
        ids = [r["id"] for r in rows]
        lines = (
            (
                await self.session.execute(
                    select(order_lines)
                    .where(order_lines.c.order_id.in_(ids))
                    .order_by(order_lines.c.order_id, order_lines.c.line_no)
                )
            )
            .mappings()
            .all()
        )
        by_order: dict[uuid.UUID, list[Line]] = {i: [] for i in ids}
        for line in lines:
            by_order[line["order_id"]].append(
                Line(line["sku"], line["quantity"], line["unit_price"])
            )
        return [
            Order(
                id=r["id"],
                customer_id=r["customer_id"],
                customer_email=r["customer_email"],
                currency=r["currency"],
                lines=by_order[r["id"]],
                status=OrderStatus(r["status"]),
                created_at=r["created_at"],
                cancelled_at=r["cancelled_at"],
            )
            for r in rows
        ]
