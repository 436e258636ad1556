"""Requests as a client sends them, the commands the door makes of them, and a
stand-in for point-service's answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from catalogue.contracts.points import PointBalance
from messaging.envelope import MessageContext
from order_service.adapters.points_client import Unavailable
from order_service.domain.model import Line
from order_service.service_layer.handlers import PlaceOrder

CUSTOMER = "c-1"
EMAIL = "c-1@example.com"
FLOW = MessageContext("flow-1", causation_id="request-1")


def order_body(customer: str = CUSTOMER, **changes: Any) -> dict[str, Any]:
    """A POST /orders body: two lines, 25.00 EUR."""
    body: dict[str, Any] = {
        "customer_id": customer,
        "customer_email": EMAIL,
        "currency": "EUR",
        "items": [
            {"sku": "book-1", "quantity": 2, "unit_price": "10.00"},
            {"sku": "pen-1", "quantity": 1, "unit_price": "5.00"},
        ],
    }
    return {**body, **changes}


def place(customer: str = CUSTOMER, *prices: str) -> PlaceOrder:
    """The command of an order with a line per price (one of 12.50 by default)."""
    lines = [Line(f"sku-{n}", 1, Decimal(p)) for n, p in enumerate(prices or ["12.50"])]
    return PlaceOrder(customer, EMAIL, "EUR", lines)


@dataclass
class FakePoints:
    """point-service's balances as the points client returns them, or why not
    (`unavailable`: "timeout", "unavailable", "error")."""

    balances: dict[str, int] = field(default_factory=dict)
    unavailable: str | None = None
    asked: list[str] = field(default_factory=list)

    async def balance(self, customer_id: str) -> PointBalance | Unavailable:
        self.asked.append(customer_id)
        if self.unavailable is not None:
            return Unavailable(self.unavailable)
        balance = self.balances.get(customer_id, 0)
        return PointBalance(customer_id=customer_id, balance=balance, as_of=datetime.now(UTC))
