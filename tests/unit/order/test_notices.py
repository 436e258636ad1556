"""What order-service announces on the activity feed (service_layer/notices.py):
after the commit, through the unit of work, never for a change that did not
commit; and GET /orders without a customer, the live page's state."""

from __future__ import annotations

import httpx
import pytest

from catalogue.contracts.activity import ActivityKind
from order_service.service_layer import handlers
from tests.unit.order.builders import CUSTOMER, FLOW, place
from tests.unit.order.fakes import FakeDatabase

KEY = handlers.IdempotentRequest("key-1", "hash-1")


async def test_a_placed_order_is_announced_with_its_total_currency_and_lines(
    db: FakeDatabase,
) -> None:
    placed = await handlers.place_order(place(CUSTOMER, "10.00", "2.50"), db.unit_of_work(FLOW))
    [notice] = db.announced
    assert (notice.kind, notice.source, notice.order_id, notice.customer_id) == (
        ActivityKind.ORDER_PLACED,
        "order-service",
        placed.order.id,
        CUSTOMER,
    )
    assert notice.detail == {"total": "12.50", "currency": "EUR", "lines": 2}


async def test_an_order_that_did_not_commit_is_not_announced(db: FakeDatabase) -> None:
    db.failures.append(ConnectionResetError("the database went away"))
    with pytest.raises(ConnectionResetError):
        await handlers.place_order(place(), db.unit_of_work(FLOW))
    assert db.announced == []


async def test_a_retry_with_the_same_key_announces_nothing_new(db: FakeDatabase) -> None:
    await handlers.place_order(place(), db.unit_of_work(FLOW), KEY)
    await handlers.place_order(place(), db.unit_of_work(FLOW), KEY)
    assert [n.kind for n in db.announced] == [ActivityKind.ORDER_PLACED]


async def test_a_cancellation_is_announced_once(db: FakeDatabase) -> None:
    placed = await handlers.place_order(place(), db.unit_of_work(FLOW))
    await handlers.cancel_order(placed.order.id, db.unit_of_work(FLOW))
    await handlers.cancel_order(placed.order.id, db.unit_of_work(FLOW))
    assert [(n.kind, n.order_id) for n in db.announced[1:]] == [
        (ActivityKind.ORDER_CANCELLED, placed.order.id)
    ]


async def test_without_a_customer_the_newest_orders_of_everyone_are_listed(
    api: httpx.AsyncClient, db: FakeDatabase
) -> None:
    ids = []
    for customer in ("c-1", "c-2", "c-3"):
        placed = await handlers.place_order(place(customer), db.unit_of_work(FLOW))
        ids.append(str(placed.order.id))
    response = await api.get("/orders", params={"limit": 2})
    assert response.status_code == 200, response.text
    assert [o["id"] for o in response.json()] == ids[::-1][:2]
    mine = await api.get("/orders", params={"customer_id": "c-1"})
    assert [o["id"] for o in mine.json()] == ids[:1]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"), ({"customer_id": ""}, "customer_id")],
)
async def test_a_bad_list_parameter_is_a_422_naming_it(
    api: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await api.get("/orders", params=params)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]
