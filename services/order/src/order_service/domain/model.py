"""The order aggregate: plain Python, no I/O. Changing an order records the
domain events (domain/events.py) that describe the change; the service layer
turns them into outbox messages committed with the order."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from order_service.domain.events import Event, OrderCancelled, OrderPlaced


class OrderStatus(enum.StrEnum):
    PLACED = "placed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Line:
    sku: str
    quantity: int
    unit_price: Decimal

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass
class Order:
    id: uuid.UUID
    customer_id: str
    customer_email: str
    currency: str
    lines: list[Line]
    status: OrderStatus = OrderStatus.PLACED
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    cancelled_at: datetime | None = None
    events: list[Event] = field(default_factory=list, repr=False, compare=False)

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0"))

    @classmethod
    def place(
        cls, customer_id: str, customer_email: str, currency: str, lines: list[Line]
    ) -> Order:
        order = cls(uuid.uuid4(), customer_id, customer_email, currency, lines)
        order.events.append(
            OrderPlaced(
                order_id=order.id,
                customer_id=customer_id,
                customer_email=customer_email,
                currency=currency,
                total=order.total,
                lines=tuple(lines),
                placed_at=order.created_at,
            )
        )
        return order

    def cancel(self) -> None:
        """Cancelling a cancelled order changes nothing and records no event."""
        if self.status is OrderStatus.CANCELLED:
            return
        self.status = OrderStatus.CANCELLED
        self.cancelled_at = datetime.now(UTC)
        self.events.append(
            OrderCancelled(
                order_id=self.id, customer_id=self.customer_id, cancelled_at=self.cancelled_at
            )
        )
