"""The in-memory database keeps what PostgreSQL does that a handler or a
response could notice: otherwise a test could pass where the service would
fail."""

from __future__ import annotations

from decimal import Decimal

import pytest

from order_service.domain.model import Order
from tests.unit.order.builders import CUSTOMER, EMAIL, FLOW, place
from tests.unit.order.fakes import ConstraintViolationError, FakeDatabase


def new_order(*prices: str) -> Order:
    command = place(CUSTOMER, *prices)
    return Order.place(CUSTOMER, EMAIL, "EUR", command.lines)


async def test_an_order_id_is_unique(db: FakeDatabase) -> None:
    order = new_order()
    async with db.unit_of_work(FLOW) as uow:
        await uow.orders.add(order)
        with pytest.raises(ConstraintViolationError, match="orders_pkey"):
            await uow.orders.add(order)


async def test_a_price_comes_back_to_the_cent_and_a_read_is_a_copy(db: FakeDatabase) -> None:
    order = new_order("1.5")
    async with db.unit_of_work(FLOW) as uow:
        await uow.orders.add(order)
        read = await uow.orders.get(order.id)
        assert read is not None
        assert read.lines[0].unit_price.as_tuple() == Decimal("1.50").as_tuple()
        read.cancel()
        assert (await uow.orders.get(order.id)) == order


async def test_leaving_without_a_commit_changes_nothing(db: FakeDatabase) -> None:
    async with db.unit_of_work(FLOW) as uow:
        await uow.orders.add(new_order())
        assert await uow.idempotency_keys.claim("key-1", "hash-1") is None
    assert (db.orders, db.idempotency_keys, db.outbox, db.commits) == ({}, {}, [], 0)
