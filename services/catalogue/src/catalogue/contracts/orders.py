"""Events of the order service, on the Kafka topic ``orders`` keyed by order id."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import ClassVar
from uuid import UUID

from pydantic import Field

from messaging.envelope import Contract


class OrderLine(Contract):
    sku: str
    quantity: int = Field(gt=0)
    unit_price: Decimal


class OrderPlaced(Contract):
    """An order was accepted. Facts only: who, what, how much."""

    TYPE: ClassVar[str] = "order.placed"
    SCHEMA_VERSION: ClassVar[int] = 1

    order_id: UUID
    customer_id: str
    customer_email: str
    currency: str
    total: Decimal
    lines: list[OrderLine]
    placed_at: datetime


class OrderCancelled(Contract):
    TYPE: ClassVar[str] = "order.cancelled"
    SCHEMA_VERSION: ClassVar[int] = 1

    order_id: UUID
    customer_id: str
    cancelled_at: datetime
