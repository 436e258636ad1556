"""What the HTTP API takes and answers, and how a handler's result is rendered.

Validation at the door guarantees that whatever is accepted can be stored: no
NUL in any string (PostgreSQL refuses it in text), a total within the
column's numeric(14,2)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from catalogue.contracts.points import PointBalance
from order_service.domain.model import Line, Order
from order_service.service_layer import handlers

# Every string the API takes is stored as PostgreSQL text, which cannot hold NUL.
NO_NUL = r"^[^\x00]*$"
# orders.total is numeric(14, 2).
MAX_TOTAL = Decimal("999999999999.99")

CustomerId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL)]
Sku = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=NO_NUL)
]


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    quantity: int = Field(gt=0, le=1000)
    # order_lines.unit_price is numeric(12, 2); the document states what is
    # accepted as a decimal string (a JSON number is accepted too).
    unit_price: Annotated[
        Decimal,
        Field(gt=0, max_digits=12, decimal_places=2),
        WithJsonSchema(
            {
                "type": "string",
                "pattern": r"^([1-9][0-9]{0,9}(\.[0-9]{1,2})?|0\.(0[1-9]|[1-9][0-9]?))$",
                "examples": ["12.00"],
            }
        ),
    ]


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId
    customer_email: EmailStr
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    items: list[LineIn] = Field(
        min_length=1,
        max_length=100,
        description=f"The order's total (the sum of quantity * unit_price) is at most {MAX_TOTAL}.",
    )

    @field_validator("items")
    @classmethod
    def _total_fits(cls, items: list[LineIn]) -> list[LineIn]:
        total = sum((line.unit_price * line.quantity for line in items), Decimal(0))
        if total > MAX_TOTAL:
            raise ValueError(f"the order's total {total} exceeds {MAX_TOTAL}")
        return items

    def command(self) -> handlers.PlaceOrder:
        return handlers.PlaceOrder(
            customer_id=self.customer_id,
            customer_email=str(self.customer_email),
            currency=self.currency,
            lines=[Line(x.sku, x.quantity, x.unit_price) for x in self.items],
        )

    def fingerprint(self) -> str:
        """The body's hash: a retry with its Idempotency-Key must send the same."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


class LineOut(BaseModel):
    sku: str
    quantity: int
    unit_price: Decimal


class OrderOut(BaseModel):
    id: uuid.UUID
    customer_id: str
    customer_email: str
    currency: str
    items: list[LineOut]
    total: Decimal
    status: str
    created_at: datetime
    cancelled_at: datetime | None

    @classmethod
    def of(cls, order: Order) -> OrderOut:
        return cls(
            id=order.id,
            customer_id=order.customer_id,
            customer_email=order.customer_email,
            currency=order.currency,
            items=[
                LineOut(sku=x.sku, quantity=x.quantity, unit_price=x.unit_price)
                for x in order.lines
            ],
            total=order.total,
            status=order.status.value,
            created_at=order.created_at,
            cancelled_at=order.cancelled_at,
        )


class PointsOut(BaseModel):
    status: Literal["available", "unavailable"]
    balance: int | None = None
    reason: str | None = None


class CustomerSummary(BaseModel):
    customer_id: str
    orders: int
    points: PointsOut

    @classmethod
    def of(cls, summary: handlers.CustomerSummary) -> CustomerSummary:
        points = summary.points
        return cls(
            customer_id=summary.customer_id,
            orders=summary.orders,
            points=PointsOut(status="available", balance=points.balance)
            if isinstance(points, PointBalance)
            else PointsOut(status="unavailable", reason=points.reason),
        )
