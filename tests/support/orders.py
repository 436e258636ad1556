"""The body of `POST /orders` for one line, as the suites place orders."""

from __future__ import annotations

from typing import Any


def order_request(customer: str, unit_price: str, sku: str) -> dict[str, Any]:
    """One `sku` at `unit_price` (EUR), mailed to <customer>@example.com."""
    return {
        "customer_id": customer,
        "customer_email": f"{customer}@example.com",
        "currency": "EUR",
        "items": [{"sku": sku, "quantity": 1, "unit_price": unit_price}],
    }
