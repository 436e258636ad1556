"""What point-service announces on the activity feed (service_layer/notices.py)
through its real doors: points granted and revoked after the commit, a dead
letter once it is in the dead-letter topic; and GET /points, the live page's
state (entrypoints/http.py)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from catalogue.contracts.activity import ActivityKind
from messaging.reads import by_order_ids
from point_service.entrypoints.http import read_routes
from tests.unit.point.builders import CUSTOMER, cancelled, grant, placed
from tests.unit.point.fakes import FakeDatabase
from tests.unit.point.harness import Point


async def test_points_granted_for_an_order_are_announced_with_the_balance(point: Point) -> None:
    order = placed("12.50")
    await point.send(order)
    [notice] = point.db.announced
    assert (notice.kind, notice.source, notice.order_id, notice.customer_id) == (
        ActivityKind.POINTS_GRANTED,
        "point-service",
        order.order_id,
        CUSTOMER,
    )
    assert notice.detail == {"points": 12, "balance": 12}


async def test_a_redelivered_order_announces_nothing_more(point: Point) -> None:
    message_id = await point.send(placed("5"))
    await point.send(placed("5"), message_id=message_id)
    assert len(point.db.announced) == 1


async def test_points_revoked_for_a_cancelled_order_are_announced(point: Point) -> None:
    order = placed("7")
    await point.send(order)
    await point.send(cancelled(order.order_id))
    revoked = point.db.announced[-1]
    assert (revoked.kind, revoked.order_id, revoked.detail) == (
        ActivityKind.POINTS_REVOKED,
        order.order_id,
        {"points": 7, "balance": 0},
    )


async def test_an_adjustment_is_announced_with_its_reason(point: Point) -> None:
    await point.send(grant(5, "goodwill"))
    [notice] = point.db.announced
    assert (notice.kind, notice.order_id, notice.detail) == (
        ActivityKind.POINTS_GRANTED,
        None,
        {"points": 5, "balance": 5, "reason": "goodwill"},
    )


async def test_nothing_is_announced_when_the_commit_fails(point: Point) -> None:
    point.db.failures.append(ValueError("a bug"))  # fails once, then the retry commits
    await point.send(placed("3"))
    assert [n.kind for n in point.db.announced] == [ActivityKind.POINTS_GRANTED]
    assert point.db.commits == 1


async def test_a_malformed_order_event_is_announced_as_a_dead_letter_with_its_reason(
    point: Point,
) -> None:
    order = placed()
    await point.send(order, body=b"{not json")
    assert len(point.dead) == 1
    [notice] = point.activity.published
    assert (notice.kind, notice.order_id) == (ActivityKind.DEAD_LETTER, order.order_id)
    assert notice.detail["from"] == "orders"
    assert "JSON" in str(notice.detail["reason"]) or "json" in str(notice.detail["reason"])
    assert point.db.announced == []


# -- GET /points --------------------------------------------------------------------
@pytest.fixture
def points_api(db: FakeDatabase) -> httpx.AsyncClient:
    [(path, app)] = read_routes(db.unit_of_work)
    assert path == "/points"
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://point")


async def test_the_ledger_lines_of_the_orders_asked_for(
    point: Point, points_api: httpx.AsyncClient
) -> None:
    first, second, other = placed("4"), placed("6"), placed("8")
    for order in (first, second, other):
        await point.send(order)
    await point.send(cancelled(first.order_id))
    ids = [str(first.order_id), str(second.order_id)]
    response = await points_api.get("/points", params={"order_id": ids})
    assert response.status_code == 200, response.text
    lines = [(x["order_id"], x["customer_id"], x["kind"], x["points"]) for x in response.json()]
    assert lines == [
        (ids[0], CUSTOMER, "grant", 4),
        (ids[1], CUSTOMER, "grant", 6),
        (ids[0], CUSTOMER, "revoke", -4),
    ]
    assert all("created_at" in x for x in response.json())


async def test_no_order_id_is_no_lines(points_api: httpx.AsyncClient) -> None:
    response = await points_api.get("/points")
    assert (response.status_code, response.json()) == (200, [])


@pytest.mark.parametrize(
    "params",
    [
        {"order_id": "not-a-uuid"},
        {"order_id": [str(uuid.uuid4()) for _ in range(201)]},
        {"customer_id": "c-1"},
    ],
    ids=["bad-uuid", "too-many", "unknown-parameter"],
)
async def test_a_bad_query_is_a_422_naming_the_field(
    points_api: httpx.AsyncClient, params: dict[str, object]
) -> None:
    response = await points_api.get("/points", params=params)  # type: ignore[arg-type]
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["order_id"]


async def test_an_unavailable_database_is_a_503(
    db: FakeDatabase, points_api: httpx.AsyncClient
) -> None:
    db.down = True
    response = await points_api.get("/points", params={"order_id": str(uuid.uuid4())})
    assert (response.status_code, response.headers["retry-after"]) == (503, "5")


async def test_only_get_is_answered(points_api: httpx.AsyncClient) -> None:
    assert (await points_api.post("/points")).status_code == 405


class DriverUuid(uuid.UUID):
    """asyncpg's UUID: a subclass, which orjson does not take as it is."""


async def test_ids_read_as_the_driver_reads_them_are_answered() -> None:
    async def read(order_ids: list[uuid.UUID]) -> list[dict[str, object]]:
        return [{"order_id": DriverUuid(str(order_ids[0]))}]

    order_id = str(uuid.uuid4())
    app = by_order_ids(read)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://point") as http:
        response = await http.get("/", params={"order_id": order_id})
    assert (response.status_code, response.json()) == (200, [{"order_id": order_id}])
