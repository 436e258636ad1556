"""Idempotency-Key of POST /orders: what the service layer needs
(`IdempotencyKeyRepository`) and its SQLAlchemy implementation.

A key's row holds its first request's fingerprint and the order that request
placed, as it was placed, so that a retry is answered with that order even if
it has changed since. The row keeps the format of earlier versions (the
`response` column is the order in the shape of the API's first response, with
its status code): rows they wrote are replayed the same, and they can read
the rows this one writes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from order_service.adapters.orm import idempotency_keys
from order_service.domain.model import Line, Order, OrderStatus

# The status of the first response, read back by earlier versions.
PLACED_STATUS = 201


@dataclass(frozen=True)
class FirstRequest:
    """What a key's first request left: its fingerprint and the order it placed."""

    request_hash: str
    order: Order


class IdempotencyKeyRepository(Protocol):
    async def claim(self, key: str, request_hash: str) -> FirstRequest | None:
        """Take the key for this request until the transaction ends: None if it
        was free; otherwise what its first request left (a concurrent first
        request has committed by then: the claim waits for it)."""

    async def remember(self, key: str, order: Order) -> None:
        """The order placed by the key's request, for its retries."""


class SqlIdempotencyKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, key: str, request_hash: str) -> FirstRequest | None:
        claimed = await self.session.execute(
            insert(idempotency_keys)
            .values(key=key, request_hash=request_hash)
            .on_conflict_do_nothing()
            .returning(idempotency_keys.c.key)
        )
        if claimed.first() is not None:
            return None
        # Inserted by an earlier request; a concurrent one has committed by now,
        # because the conflicting insert waited for it.
        row = (
            (
                await self.session.execute(
                    select(idempotency_keys).where(idempotency_keys.c.key == key)
                )
            )
            .mappings()
            .one()
        )
        return FirstRequest(row["request_hash"], as_placed(row["response"]))

    async def remember(self, key: str, order: Order) -> None:
        await self.session.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.key == key)
            .values(status_code=PLACED_STATUS, response=document(order))
        )


def document(order: Order) -> dict[str, Any]:
    """The order as JSON, in the shape of the API's order."""
    return {
        "id": str(order.id),
        "customer_id": order.customer_id,
        "customer_email": order.customer_email,
        "currency": order.currency,
        "items": [
            {"sku": x.sku, "quantity": x.quantity, "unit_price": str(x.unit_price)}
            for x in order.lines
        ],
        "total": str(order.total),
        "status": order.status.value,
        "created_at": order.created_at.isoformat(),
        "cancelled_at": order.cancelled_at.isoformat() if order.cancelled_at else None,
    }


def as_placed(document: dict[str, Any]) -> Order:
    """The order of a `document` (its total is the sum of its lines)."""
    cancelled_at = document["cancelled_at"]
    return Order(
        id=uuid.UUID(document["id"]),
        customer_id=document["customer_id"],
        customer_email=document["customer_email"],
        currency=document["currency"],
        lines=[Line(x["sku"], x["quantity"], Decimal(x["unit_price"])) for x in document["items"]],
        status=OrderStatus(document["status"]),
        created_at=datetime.fromisoformat(document["created_at"]),
        cancelled_at=datetime.fromisoformat(cancelled_at) if cancelled_at else None,
    )
