"""adapters/idempotency_keys.py: an Idempotency-Key row holds the order its
first request placed, in the shape of the API's order, so that rows written
by earlier versions (which stored the rendered first response) replay the
same, and earlier versions can read the rows written now."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from order_service.adapters.idempotency_keys import PLACED_STATUS, as_placed, document
from order_service.domain.model import Line, Order
from order_service.entrypoints.schemas import OrderOut
from tests.unit.order.builders import CUSTOMER, EMAIL


def order(created_at: datetime, *prices: str) -> Order:
    lines = [Line(f"sku-{n}", n + 1, Decimal(p)) for n, p in enumerate(prices)]
    return Order(uuid.uuid4(), CUSTOMER, EMAIL, "EUR", lines, created_at=created_at)


ORDERS = [
    order(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), "12.5", "0.01"),
    order(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "12", "9999999999.99"),
    order(datetime.now(UTC), "1E+1"),
]


def rendered(placed: Order) -> dict[str, Any]:
    """The first response's body, as earlier versions stored it."""
    return OrderOut.of(placed).model_dump(mode="json")


@pytest.mark.parametrize("placed", ORDERS, ids=["micro-seconds", "whole-seconds", "exponent"])
def test_the_row_is_the_first_response_and_replays_as_it(placed: Order) -> None:
    assert OrderOut.model_validate(document(placed)) == OrderOut.of(placed)
    assert rendered(as_placed(document(placed))) == rendered(placed)


@pytest.mark.parametrize("placed", ORDERS, ids=["micro-seconds", "whole-seconds", "exponent"])
def test_a_row_an_earlier_version_wrote_replays_to_the_letter(placed: Order) -> None:
    assert rendered(as_placed(rendered(placed))) == rendered(placed)


def test_the_status_code_is_the_one_earlier_versions_read_back() -> None:
    assert PLACED_STATUS == 201
