"""Every route of order-service through its real FastAPI app (dependencies,
problem handlers, middlewares) over the in-memory database: what is answered,
stored and sent."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy.exc

from catalogue.contracts import orders as contracts
from catalogue.contracts.notifications import SendNotification
from catalogue.topology import NOTIFICATION_SEND, ORDERS
from tests.unit.order.builders import CUSTOMER, EMAIL, FakePoints, order_body
from tests.unit.order.fakes import FakeDatabase

KEY = {"Idempotency-Key": "key-1"}


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def placed(api: httpx.AsyncClient, **headers: str) -> dict[str, Any]:
    response = await api.post("/orders", json=order_body(), headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# -- POST /orders -----------------------------------------------------------------
async def test_placing_an_order_stores_it_and_answers_201_with_its_location(
    api: httpx.AsyncClient, db: FakeDatabase
) -> None:
    response = await api.post("/orders", json=order_body())
    assert response.status_code == 201
    order = response.json()
    assert response.headers["location"] == f"/orders/{order['id']}"
    assert (order["customer_id"], order["customer_email"], order["currency"]) == (
        CUSTOMER,
        EMAIL,
        "EUR",
    )
    assert (order["total"], order["status"], order["cancelled_at"]) == ("25.00", "placed", None)
    assert [(x["sku"], x["quantity"], x["unit_price"]) for x in order["items"]] == [
        ("book-1", 2, "10.00"),
        ("pen-1", 1, "5.00"),
    ]
    assert [str(i) for i in db.orders] == [order["id"]]
    assert db.commits == 1


async def test_an_order_placed_is_an_event_on_orders_and_a_mail_command(
    api: httpx.AsyncClient, db: FakeDatabase
) -> None:
    order = await placed(api, **{"X-Correlation-ID": "flow-7"})
    event, mail = db.outbox
    assert (event.destination, event.subject, event.source) == (
        ORDERS,
        order["id"],
        "order-service",
    )
    assert isinstance(event.data, contracts.OrderPlaced)
    assert (str(event.data.order_id), str(event.data.total)) == (order["id"], "25.00")
    headers = event.binary_mode_headers()
    assert (headers["ce_type"], headers["ce_subject"], headers["ce_correlationid"]) == (
        "order.placed",
        order["id"],
        "flow-7",
    )
    assert (mail.destination, mail.subject, mail.priority) == (NOTIFICATION_SEND, order["id"], 7)
    assert isinstance(mail.data, SendNotification)
    assert mail.data.recipient == EMAIL


async def test_the_correlation_id_is_echoed_or_made_and_each_request_is_its_own_cause(
    api: httpx.AsyncClient, db: FakeDatabase
) -> None:
    given = await api.post("/orders", json=order_body(), headers={"X-Correlation-ID": "flow-7"})
    made = await api.post("/orders", json=order_body())
    assert given.headers["x-correlation-id"] == "flow-7"
    assert uuid.UUID(made.headers["x-correlation-id"])
    contexts = [m.context for m in db.outbox]
    assert [c.correlation_id for c in contexts] == ["flow-7", "flow-7"] + [
        made.headers["x-correlation-id"]
    ] * 2
    assert contexts[0].causation_id == contexts[1].causation_id != contexts[2].causation_id


async def test_the_same_body_without_a_key_places_another_order(
    api: httpx.AsyncClient, db: FakeDatabase
) -> None:
    first, second = await placed(api), await placed(api)
    assert first["id"] != second["id"]
    assert len(db.orders) == 2


# -- Idempotency-Key ----------------------------------------------------------------
async def test_a_retry_with_the_key_and_body_gets_the_first_response_and_sends_nothing(
    api: httpx.AsyncClient, db: FakeDatabase
) -> None:
    first = await api.post("/orders", json=order_body(), headers=KEY)
    again = await api.post("/orders", json=order_body(), headers=KEY)
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["location"] == first.headers["location"]
    assert (len(db.orders), len(db.outbox), db.commits) == (1, 2, 1)


async def test_a_retry_gets_the_order_as_it_was_placed_not_as_it_is(
    api: httpx.AsyncClient,
) -> None:
    """The first response, to the letter: prices as they were sent (the row
    keeps them to the cent), the status before the order was cancelled."""
    body = order_body(items=[{"sku": "a", "quantity": 3, "unit_price": "1.5"}])
    first = await api.post("/orders", json=body, headers=KEY)
    assert (await api.post(f"/orders/{first.json()['id']}/cancel")).status_code == 200
    now = (await api.get(f"/orders/{first.json()['id']}")).json()
    again = await api.post("/orders", json=body, headers=KEY)
    assert again.json() == first.json()
    assert (first.json()["total"], first.json()["items"][0]["unit_price"]) == ("4.5", "1.5")
    assert (now["status"], now["items"][0]["unit_price"]) == ("cancelled", "1.50")


async def test_the_key_reused_with_another_body_is_refused_and_changes_nothing(
    api: httpx.AsyncClient, db: FakeDatabase
) -> None:
    await api.post("/orders", json=order_body(), headers=KEY)
    other = await api.post("/orders", json=order_body(currency="USD"), headers=KEY)
    body = problem(other, 422)
    assert body["title"] == "Idempotency-Key reused"
    assert "key-1 was already used with a different request body" in body["detail"]
    assert body["errors"] == [
        {"field": "Idempotency-Key", "message": "already used with another body"}
    ]
    assert (len(db.orders), len(db.outbox)) == (1, 2)


async def test_another_key_places_another_order(api: httpx.AsyncClient, db: FakeDatabase) -> None:
    await api.post("/orders", json=order_body(), headers=KEY)
    await api.post("/orders", json=order_body(), headers={"Idempotency-Key": "key-2"})
    assert (len(db.orders), set(db.idempotency_keys)) == (2, {"key-1", "key-2"})


async def test_an_empty_key_is_invalid(api: httpx.AsyncClient, db: FakeDatabase) -> None:
    response = await api.post("/orders", json=order_body(), headers={"Idempotency-Key": ""})
    assert [e["field"] for e in problem(response, 422)["errors"]] == ["Idempotency-Key"]
    assert db.opened == 0


# -- reads and cancel --------------------------------------------------------------
async def test_an_order_reads_back_as_placed_and_lists_newest_first(
    api: httpx.AsyncClient,
) -> None:
    first, second = await placed(api), await placed(api)
    assert (await api.get(f"/orders/{first['id']}")).json() == first
    listed = (await api.get("/orders", params={"customer_id": CUSTOMER})).json()
    assert [o["id"] for o in listed] == [second["id"], first["id"]]
    one = await api.get("/orders", params={"customer_id": CUSTOMER, "limit": 1})
    assert [o["id"] for o in one.json()] == [second["id"]]
    assert (await api.get("/orders", params={"customer_id": "nobody"})).json() == []


async def test_cancelling_answers_the_cancelled_order_and_sends_order_cancelled(
    api: httpx.AsyncClient, db: FakeDatabase
) -> None:
    order = await placed(api)
    response = await api.post(f"/orders/{order['id']}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["cancelled_at"] is not None
    cancelled = db.outbox[-1]
    assert (cancelled.destination, cancelled.subject) == (ORDERS, order["id"])
    assert isinstance(cancelled.data, contracts.OrderCancelled)


async def test_cancelling_twice_answers_the_same_and_sends_one_event(
    api: httpx.AsyncClient, db: FakeDatabase
) -> None:
    order = await placed(api)
    first = await api.post(f"/orders/{order['id']}/cancel")
    second = await api.post(f"/orders/{order['id']}/cancel")
    assert second.status_code == 200
    assert second.json() == first.json()
    assert [m.data.TYPE for m in db.outbox] == [
        "order.placed",
        "notification.send",
        "order.cancelled",
    ]


@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("POST", "/cancel")])
async def test_an_unknown_order_is_404(
    api: httpx.AsyncClient, db: FakeDatabase, method: str, suffix: str
) -> None:
    missing = uuid.uuid4()
    response = await api.request(method, f"/orders/{missing}{suffix}")
    body = problem(response, 404)
    assert (body["title"], body["detail"]) == ("Order not found", f"order {missing} does not exist")
    assert db.commits == 0


# -- the database unavailable --------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/orders", order_body()),
        ("GET", f"/orders/{uuid.uuid4()}", None),
        ("GET", f"/orders?customer_id={CUSTOMER}", None),
        ("POST", f"/orders/{uuid.uuid4()}/cancel", None),
        ("GET", f"/customers/{CUSTOMER}/summary", None),
    ],
    ids=["place", "get", "list", "cancel", "summary"],
)
async def test_a_database_that_refuses_connections_is_503_with_retry_after(
    api: httpx.AsyncClient, db: FakeDatabase, method: str, path: str, body: Any
) -> None:
    db.down = True
    response = await api.request(method, path, json=body)
    assert problem(response, 503)["title"] == "Database unavailable"
    assert response.headers["retry-after"] == "5"


async def test_a_commit_that_fails_is_503_leaves_nothing_and_the_retry_places_it(
    api: httpx.AsyncClient, db: FakeDatabase
) -> None:
    db.failures.append(ConnectionRefusedError(111, "refused"))
    problem(await api.post("/orders", json=order_body(), headers=KEY), 503)
    assert (db.orders, db.idempotency_keys, db.outbox) == ({}, {}, [])
    assert (await api.post("/orders", json=order_body(), headers=KEY)).status_code == 201
    assert (len(db.orders), len(db.outbox)) == (1, 2)


async def test_a_database_error_that_is_a_bug_is_500(
    api: httpx.AsyncClient, db: FakeDatabase
) -> None:
    db.failures.append(sqlalchemy.exc.ProgrammingError("insert", None, Exception("syntax")))
    body = problem(await api.post("/orders", json=order_body()), 500)
    assert body["detail"] == "the request failed; it was logged"
    assert db.orders == {}


# -- GET /customers/{id}/summary ------------------------------------------------------
async def test_the_summary_counts_the_orders_and_shows_the_balance(
    api: httpx.AsyncClient, points: FakePoints
) -> None:
    points.balances[CUSTOMER] = 42
    await placed(api)
    await placed(api)
    response = await api.get(f"/customers/{CUSTOMER}/summary")
    assert response.json() == {
        "customer_id": CUSTOMER,
        "orders": 2,
        "points": {"status": "available", "balance": 42, "reason": None},
    }
    assert points.asked == [CUSTOMER]


async def test_the_summary_answers_without_the_balance_and_says_why(
    api: httpx.AsyncClient, points: FakePoints
) -> None:
    points.unavailable = "timeout"
    response = await api.get("/customers/nobody/summary")
    assert response.status_code == 200
    assert response.json() == {
        "customer_id": "nobody",
        "orders": 0,
        "points": {"status": "unavailable", "balance": None, "reason": "timeout"},
    }
