"""Activity notices on the running local stack (`make up`): a placed order is
heard on Redis by a real subscriber of `activity.*`; with Redis stopped,
orders are still accepted and settled and the services count what they
dropped; with Redis back, notices flow again. The read APIs the live page
loads its state from answer for the same order."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from catalogue.contracts.activity import CHANNEL_PATTERN, ActivityKind, ActivityNotice
from messaging.activity import PAUSE_AFTER_FAILURE_S
from stackctl.components import LocalStack
from tests.e2e.targets import LocalTarget
from tests.support.metrics import metric, scrape
from tests.support.orders import order_request
from tests.support.waiting import eventually

# What one placed order (of at least one whole unit) is told as, in all.
SETTLED = [
    ActivityKind.MAIL_SENT,
    ActivityKind.MAIL_SENT,
    ActivityKind.ORDER_PLACED,
    ActivityKind.POINTS_GRANTED,
]
PROGRAMS = ("order-service", "point-service", "notification-service")


@pytest.fixture
async def heard(local_stack: LocalStack) -> AsyncIterator[PubSub]:
    """A subscriber of every service's activity channel."""
    redis = Redis(
        host=local_stack.s.host,
        port=local_stack.s.redis_port,
        password=local_stack.creds.redis_password,
    )
    pubsub = redis.pubsub()
    await pubsub.psubscribe(CHANNEL_PATTERN)
    yield pubsub
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    await redis.aclose()


async def notices_of(pubsub: PubSub, order_id: uuid.UUID, timeout_s: float = 30) -> list[Any]:
    """The notices about the order heard until it settled (SETTLED) or the time
    ran out, as (channel, notice)."""
    found: list[tuple[str, ActivityNotice]] = []
    deadline = time.monotonic() + timeout_s
    while sorted(n.kind for _, n in found) != SETTLED and time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message is None:
            continue
        notice = ActivityNotice.model_validate_json(message["data"])
        if notice.order_id == order_id:
            found.append((message["channel"].decode(), notice))
    return found


async def place(api: httpx.AsyncClient, customer: str) -> uuid.UUID:
    response = await api.post("/orders", json=order_request(customer, "12.00", "sku-feed"))
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


def service_url(stack: LocalStack, program: str) -> str:
    port = getattr(stack.s, f"{program.replace('-', '_')}_port")
    return f"http://{stack.s.host}:{port}"


async def dropped(stack: LocalStack) -> dict[str, float]:
    """activity_notices_total{outcome="dropped"} of each service."""
    return {
        program: metric(
            await scrape(f"{service_url(stack, program)}/metrics"),
            "activity_notices_total",
            outcome="dropped",
        )
        for program in PROGRAMS
    }


async def settled(stack: LocalStack, order_id: uuid.UUID) -> tuple[list[Any], list[Any]]:
    """The order's ledger lines and mails, from the services' read APIs."""
    params = {"order_id": str(order_id)}
    async with httpx.AsyncClient(timeout=5) as http:
        points = await http.get(f"{service_url(stack, 'point-service')}/points", params=params)
        mails = await http.get(
            f"{service_url(stack, 'notification-service')}/deliveries", params=params
        )
    assert (points.status_code, mails.status_code) == (200, 200), (points.text, mails.text)
    return points.json(), mails.json()


async def test_a_placed_order_is_heard_on_redis_from_every_service(
    api: httpx.AsyncClient, heard: PubSub
) -> None:
    customer = f"feed-{uuid.uuid4().hex[:8]}"
    order_id = await place(api, customer)
    found = await notices_of(heard, order_id)
    assert sorted(n.kind for _, n in found) == SETTLED, found
    by_kind = {n.kind: (channel, n) for channel, n in found}
    channel, placed = by_kind[ActivityKind.ORDER_PLACED]
    assert (channel, placed.customer_id) == ("activity.order-service", customer)
    assert placed.detail == {"total": "12.00", "currency": "EUR", "lines": 1}
    channel, granted = by_kind[ActivityKind.POINTS_GRANTED]
    assert (channel, granted.detail) == ("activity.point-service", {"points": 12, "balance": 12})
    mails = sorted(str(n.detail["mail"]) for c, n in found if c == "activity.notification-service")
    assert mails == ["order", "points"]
    # One flow, one trace: the page links every notice of the order to it.
    assert placed.trace_id is not None
    assert {n.trace_id for _, n in found} == {placed.trace_id}


async def test_the_read_apis_answer_for_a_settled_order(
    api: httpx.AsyncClient, local_stack: LocalStack
) -> None:
    customer = f"feed-{uuid.uuid4().hex[:8]}"
    order_id = await place(api, customer)
    points, mails = await eventually(
        lambda: settled(local_stack, order_id), lambda got: len(got[0]) == 1 and len(got[1]) == 2
    )
    [line] = points
    assert (line["order_id"], line["customer_id"], line["kind"], line["points"]) == (
        str(order_id),
        customer,
        "grant",
        12,
    )
    assert sorted(m["kind"] for m in mails) == ["order", "points"]
    assert {m["order_id"] for m in mails} == {str(order_id)}
    newest = (await api.get("/orders", params={"limit": 5})).json()
    assert str(order_id) in [o["id"] for o in newest]


async def test_without_redis_orders_settle_and_the_notices_are_counted_as_dropped(
    api: httpx.AsyncClient, local_stack: LocalStack
) -> None:
    target = LocalTarget()
    before = await dropped(local_stack)
    await target.stop("redis")
    try:
        customer = f"feed-{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        order_id = await place(api, customer)
        accepted_in = time.monotonic() - started
        points, mails = await eventually(
            lambda: settled(local_stack, order_id),
            lambda got: len(got[0]) == 1 and len(got[1]) == 2,
        )
        assert (len(points), len(mails)) == (1, 2), "settled without Redis"
        after = await eventually(
            lambda: dropped(local_stack),
            lambda now: all(now[p] > before[p] for p in PROGRAMS),
            timeout_s=10,
        )
        assert {p: after[p] > before[p] for p in PROGRAMS} == dict.fromkeys(PROGRAMS, True)
        assert accepted_in < 2, "Redis down does not slow an order down"
    finally:
        await target.start("redis")


async def test_with_redis_back_notices_flow_again(
    api: httpx.AsyncClient, local_stack: LocalStack
) -> None:
    target = LocalTarget()
    await target.stop("redis")
    try:
        # Each service tries (and fails) while Redis is down.
        order_id = await place(api, f"feed-{uuid.uuid4().hex[:8]}")
        await eventually(
            lambda: settled(local_stack, order_id),
            lambda got: len(got[0]) == 1 and len(got[1]) == 2,
        )
    finally:
        await target.start("redis")
    await asyncio.sleep(PAUSE_AFTER_FAILURE_S + 0.5)  # the services' pause after a failure
    redis = Redis(
        host=local_stack.s.host,
        port=local_stack.s.redis_port,
        password=local_stack.creds.redis_password,
    )
    pubsub = redis.pubsub()
    try:
        await pubsub.psubscribe(CHANNEL_PATTERN)
        order_id = await place(api, f"feed-{uuid.uuid4().hex[:8]}")
        found = await notices_of(pubsub, order_id)
        assert sorted(n.kind for _, n in found) == SETTLED, found
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await redis.aclose()
