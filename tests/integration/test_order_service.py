"""order-service over HTTP against the real stack: the outbox in the same
transaction as the order, Idempotency-Key, bad input, a database outage, and
orders accepted while Kafka is down."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from catalogue.topology import NOTIFICATION_SEND, ORDERS
from messaging.database import build_engine
from messaging.envelope import MessageContext
from messaging.outbox.headers import parse_outbox_headers
from messaging.outbox.writer import write_to_outbox
from order_service.domain.model import Line
from order_service.service_layer import handlers
from order_service.service_layer.unit_of_work import UnitOfWork
from order_service.settings import OrderServiceSettings
from stackctl.apps import Apps
from stackctl.components import LocalStack
from stackctl.supervisor import Supervisor
from tests.support import kafka
from tests.support.processes import stopped


def new_order(customer: str | None = None, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer_id": customer or f"cust-{uuid.uuid4().hex[:8]}",
        "customer_email": "buyer@example.com",
        "currency": "EUR",
        "items": [{"sku": "book-1", "quantity": 2, "unit_price": "12.50"}],
    }
    body.update(changes)
    return body


@pytest.fixture
async def db(local_stack: LocalStack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(local_stack.postgres_dsn(database="order", user="order"))
    yield conn
    await conn.close()


async def outbox_types(db: asyncpg.Connection, order_id: str) -> list[str]:
    rows = await db.fetch(
        "select message_type from outbox where ordering_key = $1 order by id", order_id
    )
    return [r["message_type"] for r in rows]


async def test_placing_an_order_writes_the_order_and_its_messages_in_one_transaction(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await api.post("/orders", json=new_order())
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["total"] == "25.00"
    assert response.headers["location"] == f"/orders/{order['id']}"
    assert await outbox_types(db, order["id"]) == ["order.placed", "notification.send"]
    row = await db.fetchrow(
        "select headers, destination, routing_key, priority from outbox "
        "where ordering_key = $1 and message_type = 'notification.send'",
        order["id"],
    )
    assert row is not None
    assert (row["destination"], row["routing_key"], row["priority"]) == (
        NOTIFICATION_SEND.exchange,
        NOTIFICATION_SEND.routing_key,
        7,
    )
    headers = parse_outbox_headers(row["headers"])
    assert headers["ce"]["correlationid"] == response.headers["x-correlation-id"]
    assert headers["trace"]["traceparent"].startswith("00-")


class FailsBeforeCommit(UnitOfWork):
    async def commit(self) -> None:
        await write_to_outbox(self.session, self.outbox, self.collect_messages())
        raise RuntimeError("the request fails after the order and its messages were written")


async def test_a_rolled_back_transaction_produces_no_message(
    local_stack: LocalStack, db: asyncpg.Connection
) -> None:
    env = Apps(local_stack).order_service_env()
    settings = OrderServiceSettings.model_validate({k.lower(): v for k, v in env.items()})
    engine = build_engine(settings, "tests")
    uow = FailsBeforeCommit(
        async_sessionmaker(engine, expire_on_commit=False), MessageContext("rollback")
    )
    since = await kafka.end_offsets(local_stack.kafka_bootstrap, ORDERS.topic)
    customer = f"rollback-{uuid.uuid4().hex[:8]}"

    with pytest.raises(RuntimeError):
        await handlers.place_order(
            handlers.PlaceOrder(customer, "x@example.com", "EUR", [Line("sku", 1, Decimal(1))]),
            uow,
        )
    await engine.dispose()
    assert await db.fetchval("select count(*) from orders where customer_id = $1", customer) == 0
    assert (
        await db.fetchval(
            "select count(*) from outbox where headers->'ce'->>'correlationid' = 'rollback'"
        )
        == 0
    )
    # And nothing about it reaches Kafka while the relay keeps draining.
    records = await kafka.read(
        local_stack.kafka_bootstrap, ORDERS.topic, until=10**9, timeout_s=3, since=since
    )
    assert not [r for r in records if r.value.get("customer_id") == customer]


async def test_same_idempotency_key_and_body_returns_the_original_and_creates_nothing(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    key = str(uuid.uuid4())
    body = new_order()
    first = await api.post("/orders", json=body, headers={"Idempotency-Key": key})
    again = await asyncio.gather(
        *(api.post("/orders", json=body, headers={"Idempotency-Key": key}) for _ in range(5))
    )
    assert first.status_code == 201
    assert {r.status_code for r in again} == {201}
    assert all(r.json() == first.json() for r in again)
    assert (
        await db.fetchval("select count(*) from orders where customer_id = $1", body["customer_id"])
        == 1
    )
    assert await outbox_types(db, first.json()["id"]) == ["order.placed", "notification.send"]


async def test_concurrent_first_requests_with_one_key_create_one_order(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    key, body = str(uuid.uuid4()), new_order()
    responses = await asyncio.gather(
        *(api.post("/orders", json=body, headers={"Idempotency-Key": key}) for _ in range(8))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert (
        await db.fetchval("select count(*) from orders where customer_id = $1", body["customer_id"])
        == 1
    )


async def test_same_idempotency_key_with_another_body_is_rejected(api: httpx.AsyncClient) -> None:
    key = str(uuid.uuid4())
    assert (
        await api.post("/orders", json=new_order(), headers={"Idempotency-Key": key})
    ).is_success
    response = await api.post("/orders", json=new_order(), headers={"Idempotency-Key": key})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "different request body" in response.json()["detail"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"currency": "eur"}, "currency"),
        ({"customer_email": "not-an-address"}, "customer_email"),
        ({"items": []}, "items"),
        ({"items": [{"sku": "a", "quantity": 0, "unit_price": "1.00"}]}, "items[0].quantity"),
        ({"items": [{"sku": "a", "quantity": 1, "unit_price": "1.001"}]}, "items[0].unit_price"),
        ({"items": [{"sku": "", "quantity": 1, "unit_price": "1.00"}]}, "items[0].sku"),
        ({"customer_id": None}, "customer_id"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
async def test_bad_input_gets_422_naming_the_field(
    api: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    response = await api.post("/orders", json=new_order(**change))
    assert response.status_code == 422
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in problem["errors"]], problem
    assert field in problem["detail"]


async def test_unknown_order_is_404_and_malformed_id_is_422(api: httpx.AsyncClient) -> None:
    missing = await api.get(f"/orders/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.json()["title"] == "Order not found"
    assert (await api.post(f"/orders/{uuid.uuid4()}/cancel")).status_code == 404
    malformed = await api.get("/orders/not-a-uuid")
    assert malformed.status_code == 422
    assert malformed.json()["errors"][0]["field"] == "order_id"


async def test_get_list_and_cancel_twice_emits_one_event(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    placed = [(await api.post("/orders", json=new_order(customer))).json() for _ in range(3)]
    listed = (await api.get("/orders", params={"customer_id": customer})).json()
    assert {o["id"] for o in listed} == {o["id"] for o in placed}
    assert (await api.get(f"/orders/{placed[0]['id']}")).json() == placed[0]

    first = await api.post(f"/orders/{placed[0]['id']}/cancel")
    second = await api.post(f"/orders/{placed[0]['id']}/cancel")
    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == second.json()["status"] == "cancelled"
    assert first.json()["cancelled_at"] == second.json()["cancelled_at"]
    assert await outbox_types(db, placed[0]["id"]) == [
        "order.placed",
        "notification.send",
        "order.cancelled",
    ]


async def test_openapi_document_is_served(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    assert {"/orders", "/orders/{order_id}", "/orders/{order_id}/cancel"} <= set(spec["paths"])


async def test_database_down_gives_503_fast_and_nothing_half_written(
    local_stack: LocalStack, supervisor: Supervisor, api: httpx.AsyncClient
) -> None:
    customer = f"dbdown-{uuid.uuid4().hex[:8]}"
    async with stopped(local_stack, supervisor, "postgres"):
        started = time.monotonic()
        response = await api.post("/orders", json=new_order(customer))
        elapsed = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
        assert elapsed < 5, f"503 took {elapsed:.1f}s"
        assert (await api.get("/health/ready")).status_code == 503

    for _ in range(50):
        response = await api.post("/orders", json=new_order(customer))
        if response.status_code == 201:
            break
        await asyncio.sleep(0.2)
    assert response.status_code == 201
    conn = await asyncpg.connect(local_stack.postgres_dsn(database="order", user="order"))
    try:
        orders = await conn.fetch("select id from orders where customer_id = $1", customer)
        assert [str(o["id"]) for o in orders] == [response.json()["id"]]
    finally:
        await conn.close()


async def test_orders_are_accepted_while_kafka_is_down_and_all_events_arrive_in_order(
    local_stack: LocalStack, supervisor: Supervisor, api: httpx.AsyncClient
) -> None:
    since = await kafka.end_offsets(local_stack.kafka_bootstrap, ORDERS.topic)
    customer = f"kafkadown-{uuid.uuid4().hex[:8]}"
    async with stopped(local_stack, supervisor, "kafka"):
        limit = asyncio.Semaphore(20)

        async def place() -> httpx.Response:
            async with limit:
                return await api.post("/orders", json=new_order(customer))

        responses = await asyncio.gather(*(place() for _ in range(1000)))
        assert [r.status_code for r in responses].count(201) == 1000
        ids = [r.json()["id"] for r in responses]
        cancelled = ids[:100]
        for order_id in cancelled:
            assert (await api.post(f"/orders/{order_id}/cancel")).status_code == 200

    records = await kafka.read(
        local_stack.kafka_bootstrap, ORDERS.topic, until=1100, timeout_s=120, since=since
    )
    mine = [r for r in kafka.first_occurrences(records) if r.value["customer_id"] == customer]
    placed = {r.value["order_id"] for r in mine if r.headers["ce_type"] == "order.placed"}
    assert placed == set(ids)
    by_order: dict[str, list[str]] = {}
    for r in sorted(mine, key=lambda r: (r.partition, r.offset)):
        by_order.setdefault(r.key, []).append(r.headers["ce_type"])
    assert all(by_order[i] == ["order.placed", "order.cancelled"] for i in cancelled)
    assert all(by_order[i] == ["order.placed"] for i in ids[100:])
