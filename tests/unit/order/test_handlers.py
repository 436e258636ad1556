"""The use cases (service_layer/handlers.py) on the in-memory unit of work:
what they store, send and return, without HTTP."""

from __future__ import annotations

import uuid

import pytest

from catalogue.contracts import orders as contracts
from order_service.domain.model import OrderStatus
from order_service.service_layer import handlers
from tests.unit.order.builders import CUSTOMER, FLOW, FakePoints, place
from tests.unit.order.fakes import FakeDatabase

KEY = handlers.IdempotentRequest("key-1", "hash-1")


async def test_placing_stores_the_order_and_sends_its_messages_in_one_commit(
    db: FakeDatabase,
) -> None:
    placed = await handlers.place_order(place(), db.unit_of_work(FLOW))
    assert not placed.replayed
    assert list(db.orders) == [placed.order.id]
    assert [m.data.TYPE for m in db.outbox] == ["order.placed", "notification.send"]
    assert {m.context for m in db.outbox} == {FLOW}
    assert (db.commits, placed.order.events) == (1, [])


async def test_a_key_is_remembered_with_the_order_it_placed(db: FakeDatabase) -> None:
    placed = await handlers.place_order(place(), db.unit_of_work(FLOW), KEY)
    request_hash, document = db.idempotency_keys["key-1"]
    assert request_hash == "hash-1"
    assert document is not None
    assert document["id"] == str(placed.order.id)


async def test_a_retry_gets_the_first_order_back_without_a_commit(db: FakeDatabase) -> None:
    first = await handlers.place_order(place(), db.unit_of_work(FLOW), KEY)
    again = await handlers.place_order(place(), db.unit_of_work(FLOW), KEY)
    assert again.replayed
    assert again.order == first.order
    assert (len(db.orders), len(db.outbox), db.commits) == (1, 2, 1)


async def test_a_retry_gets_the_order_as_it_was_placed(db: FakeDatabase) -> None:
    first = await handlers.place_order(place(CUSTOMER, "1.5"), db.unit_of_work(FLOW), KEY)
    await handlers.cancel_order(first.order.id, db.unit_of_work(FLOW))
    again = await handlers.place_order(place(CUSTOMER, "1.5"), db.unit_of_work(FLOW), KEY)
    assert again.order.status is OrderStatus.PLACED
    assert str(again.order.lines[0].unit_price) == "1.5"


async def test_the_key_with_another_request_is_refused_and_changes_nothing(
    db: FakeDatabase,
) -> None:
    await handlers.place_order(place(), db.unit_of_work(FLOW), KEY)
    other = handlers.IdempotentRequest("key-1", "hash-2")
    with pytest.raises(handlers.IdempotencyKeyReusedError, match="key-1"):
        await handlers.place_order(place(), db.unit_of_work(FLOW), other)
    assert (len(db.orders), db.commits) == (1, 1)


async def test_a_commit_that_fails_leaves_no_trace_and_frees_the_key(db: FakeDatabase) -> None:
    db.failures.append(ConnectionRefusedError("gone"))
    with pytest.raises(ConnectionRefusedError):
        await handlers.place_order(place(), db.unit_of_work(FLOW), KEY)
    assert (db.orders, db.idempotency_keys, db.outbox) == ({}, {}, [])
    placed = await handlers.place_order(place(), db.unit_of_work(FLOW), KEY)
    assert not placed.replayed


async def test_a_database_that_is_down_fails_the_use_case(db: FakeDatabase) -> None:
    db.down = True
    with pytest.raises(ConnectionRefusedError):
        await handlers.place_order(place(), db.unit_of_work(FLOW))
    assert (db.opened, db.commits) == (1, 0)


async def test_cancelling_stores_the_status_and_sends_order_cancelled(db: FakeDatabase) -> None:
    placed = await handlers.place_order(place(), db.unit_of_work(FLOW))
    order = await handlers.cancel_order(placed.order.id, db.unit_of_work(FLOW))
    stored = db.orders[order.id]
    assert (stored.status, stored.cancelled_at) == (OrderStatus.CANCELLED, order.cancelled_at)
    assert isinstance(db.outbox[-1].data, contracts.OrderCancelled)


async def test_cancelling_a_cancelled_order_sends_nothing_more(db: FakeDatabase) -> None:
    placed = await handlers.place_order(place(), db.unit_of_work(FLOW))
    first = await handlers.cancel_order(placed.order.id, db.unit_of_work(FLOW))
    again = await handlers.cancel_order(placed.order.id, db.unit_of_work(FLOW))
    assert again.cancelled_at == first.cancelled_at
    assert len(db.outbox) == 3


@pytest.mark.parametrize("use_case", [handlers.cancel_order, handlers.get_order])
async def test_an_unknown_order_is_not_found(db: FakeDatabase, use_case: object) -> None:
    missing = uuid.uuid4()
    with pytest.raises(handlers.OrderNotFoundError, match=f"order {missing} does not exist"):
        await use_case(missing, db.unit_of_work(FLOW))  # type: ignore[operator]
    assert db.commits == 0


async def test_reads_do_not_commit(db: FakeDatabase) -> None:
    placed = await handlers.place_order(place(), db.unit_of_work(FLOW))
    assert (await handlers.get_order(placed.order.id, db.unit_of_work(FLOW))).id == placed.order.id
    assert len(await handlers.list_orders(CUSTOMER, 10, db.unit_of_work(FLOW))) == 1
    assert await handlers.count_orders(CUSTOMER, db.unit_of_work(FLOW)) == 1
    assert db.commits == 1


async def test_the_summary_asks_point_service_and_counts_the_orders(db: FakeDatabase) -> None:
    points = FakePoints(balances={CUSTOMER: 9})
    await handlers.place_order(place(), db.unit_of_work(FLOW))
    summary = await handlers.customer_summary(CUSTOMER, db.unit_of_work(FLOW), points)
    assert (summary.customer_id, summary.orders) == (CUSTOMER, 1)
    assert getattr(summary.points, "balance", None) == 9
