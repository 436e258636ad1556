"""The in-memory database refuses what PostgreSQL refuses, as the handlers
rely on it: otherwise a test could pass where the service would fail."""

from __future__ import annotations

import uuid

import pytest

from point_service.domain.model import Account
from tests.unit.point.builders import FLOW
from tests.unit.point.fakes import ConstraintViolationError, FakeDatabase


async def test_a_second_entry_of_a_kind_for_an_order_is_refused_even_of_0_points(
    db: FakeDatabase,
) -> None:
    order = uuid.uuid4()
    async with db.unit_of_work(FLOW) as uow:
        account = await uow.points.lock_account("c")
        account.revoke(order, 5, uuid.uuid4())  # the balance is 0: a 0-point entry
        await uow.points.save(account)
        account.revoke(order, 5, uuid.uuid4())
        with pytest.raises(ConstraintViolationError, match="one_per_order"):
            await uow.points.save(account)


async def test_a_negative_balance_is_refused(db: FakeDatabase) -> None:
    async with db.unit_of_work(FLOW) as uow:
        with pytest.raises(ConstraintViolationError, match="not_negative"):
            await uow.points.save(Account("c", -1))
    assert db.balances == {}
