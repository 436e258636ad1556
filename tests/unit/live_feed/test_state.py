"""GET /state's assembly: the recent orders with their points and mails, a
service that is down or slow shown as unavailable (its parts unknown, not
empty) and never waited on beyond its bound."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from catalogue.contracts.activity import ActivityKind, ActivityNotice
from live_feed.adapters.services import (
    Delivery,
    HttpReadApis,
    LedgerEntry,
    OrderRow,
    ServiceUnavailableError,
)
from live_feed.state import Heard, Links, SingleFlight, State, assemble

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
LINKS = Links(trace_ui="http://jaeger", mail_ui="http://mail")


def order(n: int) -> OrderRow:
    return OrderRow(
        id=uuid.UUID(int=n),
        customer_id=f"c{n}",
        status="placed",
        total=Decimal("12.50"),
        currency="EUR",
        items=[{"sku": "a"}, {"sku": "b"}],
        created_at=T0 + timedelta(seconds=n),
    )


class FakeApis:
    """The three read APIs; a service listed in `down` raises as a failed call."""

    def __init__(self, orders: list[OrderRow], down: Sequence[str] = ()) -> None:
        self.orders = orders
        self.down = set(down)
        self.asked: list[str] = []

    def _check(self, service: str) -> None:
        self.asked.append(service)
        if service in self.down:
            raise ServiceUnavailableError("ConnectError")

    async def recent_orders(self, limit: int) -> list[OrderRow]:
        self._check("order")
        return self.orders[:limit]

    async def points(self, order_ids: Sequence[uuid.UUID]) -> list[LedgerEntry]:
        self._check("point")
        return [
            LedgerEntry(order_id=i, customer_id="c", kind="grant", points=12, created_at=T0)
            for i in order_ids
        ]

    async def deliveries(self, order_ids: Sequence[uuid.UUID]) -> list[Delivery]:
        self._check("notification")
        return [
            Delivery(
                order_id=i,
                kind=kind,
                recipient="c@example.com",
                subject="s",
                attempts=1,
                delivered_at=T0,
            )
            for i in order_ids
            for kind in ("order", "points")
        ]


async def state(apis: FakeApis, heard: Heard | None = None, limit: int = 50) -> State:
    return await assemble(apis, limit, heard or Heard(), "subscribed", LINKS)


async def test_each_order_comes_with_its_points_and_both_mails() -> None:
    result = await state(FakeApis([order(1), order(2)]))
    assert {s: v.status for s, v in result.services.items()} == {
        "order-service": "ok",
        "point-service": "ok",
        "notification-service": "ok",
    }
    first = result.orders[0]
    assert first.order_id == uuid.UUID(int=1)
    assert (first.total, first.currency, first.lines) == ("12.50", "EUR", 2)
    assert [p.points for p in first.points or []] == [12]
    assert sorted(m.kind for m in first.mails or []) == ["order", "points"]
    assert result.links == LINKS


async def test_point_service_down_leaves_points_unknown_and_the_rest_shown() -> None:
    result = await state(FakeApis([order(1)], down=["point"]))
    assert result.services["point-service"].status == "unavailable"
    assert result.services["point-service"].reason == "ConnectError"
    assert result.orders[0].points is None
    assert len(result.orders[0].mails or []) == 2


async def test_order_service_down_means_no_orders_and_nobody_else_asked() -> None:
    apis = FakeApis([order(1)], down=["order"])
    result = await state(apis)
    assert result.orders == []
    assert result.services["order-service"].status == "unavailable"
    assert result.services["point-service"].status == "not asked"
    assert apis.asked == ["order"]


async def test_no_orders_asks_nobody_else() -> None:
    apis = FakeApis([])
    result = await state(apis)
    assert result.orders == []
    assert apis.asked == ["order"]
    assert {v.status for v in result.services.values()} == {"ok"}


async def test_the_trace_ids_and_incidents_heard_are_part_of_the_state() -> None:
    heard = Heard()
    heard.remember(notice(ActivityKind.POINTS_GRANTED, 1, trace="b" * 32))
    heard.remember(notice(ActivityKind.ORDER_PLACED, 1, trace="a" * 32))
    heard.remember(notice(ActivityKind.MAIL_SENT, 1, trace="c" * 32))
    heard.remember(notice(ActivityKind.DEAD_LETTER, None))
    result = await state(FakeApis([order(1), order(2)]), heard)
    # The trace that placed the order wins over the others heard.
    assert [o.trace_id for o in result.orders] == ["a" * 32, None]
    assert [i.kind for i in result.incidents] == [ActivityKind.DEAD_LETTER]


def test_what_is_heard_is_bounded() -> None:
    heard = Heard(orders=3, incidents=2)
    for n in range(10):
        heard.remember(notice(ActivityKind.ORDER_PLACED, n, trace=f"{n:032x}"))
        heard.remember(notice(ActivityKind.MAIL_PARKED, n))
    assert list(heard.trace_ids) == [uuid.UUID(int=n) for n in (7, 8, 9)]
    assert [i.order_id for i in heard.incidents] == [uuid.UUID(int=9), uuid.UUID(int=8)]


def notice(kind: ActivityKind, n: int | None, trace: str | None = None) -> ActivityNotice:
    return ActivityNotice(
        kind=kind,
        source="test",
        at=T0,
        order_id=None if n is None else uuid.UUID(int=n),
        trace_id=trace,
    )


async def test_concurrent_loads_share_one_round_of_calls() -> None:
    calls = 0

    async def slow(limit: int) -> State:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return await state(FakeApis([]), limit=limit)

    flight = SingleFlight(slow)
    results = await asyncio.gather(*(flight(50) for _ in range(20)))
    assert calls == 1
    assert len({id(r) for r in results}) == 1
    await flight(50)
    assert calls == 2


# -- the HTTP adapter: every failure is "unavailable", within the bound ------


def apis_answering(handler: httpx.MockTransport, timeout_s: float = 0.2) -> HttpReadApis:
    http = httpx.AsyncClient(transport=handler)
    return HttpReadApis(http, "http://o", "http://p", "http://n", timeout_s)


async def test_a_hung_service_is_unavailable_within_its_bound() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200, json=[])

    apis = apis_answering(httpx.MockTransport(hang), timeout_s=0.1)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError, match=r"no answer within 0\.1 s"):
        await apis.recent_orders(5)
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (httpx.Response(503), "HTTP 503"),
        (httpx.Response(200, json={"not": "a list"}), "unexpected shape"),
        (httpx.Response(200, json=[{"id": "not a uuid"}]), "unexpected shape"),
    ],
)
async def test_an_unexpected_answer_is_unavailable(response: httpx.Response, reason: str) -> None:
    apis = apis_answering(httpx.MockTransport(lambda _: response))
    with pytest.raises(ServiceUnavailableError, match=reason):
        await apis.points([uuid.UUID(int=1)])


async def test_a_refused_connection_is_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    apis = apis_answering(httpx.MockTransport(refuse))
    with pytest.raises(ServiceUnavailableError, match="ConnectError"):
        await apis.deliveries([uuid.UUID(int=1)])


async def test_the_read_apis_are_asked_by_repeated_order_ids() -> None:
    seen: list[httpx.URL] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json=[])

    apis = apis_answering(httpx.MockTransport(record))
    ids = [uuid.UUID(int=1), uuid.UUID(int=2)]
    await apis.recent_orders(7)
    await apis.points(ids)
    await apis.deliveries(ids)
    assert [str(u) for u in seen] == [
        "http://o/orders?limit=7",
        f"http://p/points?order_id={ids[0]}&order_id={ids[1]}",
        f"http://n/deliveries?order_id={ids[0]}&order_id={ids[1]}",
    ]
