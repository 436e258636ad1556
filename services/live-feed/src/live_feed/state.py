"""GET /state: the recent orders with their points and mails, assembled from
the services' read APIs, plus what only this gateway heard (trace ids, dead
letters and parked mails).

A service that does not answer is reported `unavailable` with the reason,
and the parts it would have given are null (unknown), never empty (none):
the page tells "no mail yet" from "notification-service is down".
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel

from catalogue.contracts.activity import ActivityKind, ActivityNotice
from catalogue.services import program
from live_feed.adapters.services import (
    Delivery,
    LedgerEntry,
    OrderRow,
    ReadApis,
    ServiceUnavailableError,
)

INCIDENTS = (ActivityKind.MAIL_PARKED, ActivityKind.DEAD_LETTER)
ORDER_SERVICE, POINT_SERVICE, NOTIFICATION_SERVICE = (
    program(s) for s in ("order", "point", "notification")
)
# Whether notices are coming: subscribed to Redis, not (Redis down), or no
# Redis configured (REDIS_HOST empty).
Feed = Literal["subscribed", "not subscribed", "off"]


class ServiceStatus(BaseModel):
    status: Literal["ok", "unavailable", "not asked"]
    reason: str | None = None


class PointsOut(BaseModel):
    kind: str
    points: int
    created_at: datetime


class MailOut(BaseModel):
    kind: str
    subject: str
    attempts: int
    delivered_at: datetime | None


class OrderOut(BaseModel):
    order_id: UUID
    customer_id: str
    status: str
    total: str
    currency: str
    lines: int
    created_at: datetime
    cancelled_at: datetime | None
    # Known when this gateway heard one of the order's notices.
    trace_id: str | None
    # None: the service that knows them did not answer.
    points: list[PointsOut] | None
    mails: list[MailOut] | None


class Links(BaseModel):
    trace_ui: str
    mail_ui: str


class State(BaseModel):
    at: datetime
    services: dict[str, ServiceStatus]
    orders: list[OrderOut]
    # Dead letters and parked mails this gateway heard since it started (no
    # service API lists them), newest first.
    incidents: list[ActivityNotice]
    feed: Feed
    links: Links


class Heard:
    """What only the notices tell, kept in memory and bounded: the trace id
    of recent orders, and the last dead letters and parked mails."""

    def __init__(self, orders: int = 2000, incidents: int = 50) -> None:
        self._orders = orders
        self.trace_ids: OrderedDict[UUID, str] = OrderedDict()
        self.incidents: deque[ActivityNotice] = deque(maxlen=incidents)

    def remember(self, notice: ActivityNotice) -> None:
        if notice.kind in INCIDENTS:
            self.incidents.appendleft(notice)
        if notice.order_id is None or notice.trace_id is None:
            return
        # The trace that placed the order, when heard; else the first heard.
        placed = notice.kind is ActivityKind.ORDER_PLACED
        if placed or notice.order_id not in self.trace_ids:
            self.trace_ids[notice.order_id] = notice.trace_id
            self.trace_ids.move_to_end(notice.order_id)
        while len(self.trace_ids) > self._orders:
            self.trace_ids.popitem(last=False)


T = TypeVar("T")


async def ask(call: Awaitable[T]) -> T | ServiceUnavailableError:
    try:
        return await call
    except ServiceUnavailableError as exc:
        return exc


def status(answer: object) -> ServiceStatus:
    if isinstance(answer, ServiceUnavailableError):
        return ServiceStatus(status="unavailable", reason=answer.reason)
    return ServiceStatus(status="ok")


async def assemble(
    apis: ReadApis,
    limit: int,
    heard: Heard,
    feed: Feed,
    links: Links,
) -> State:
    orders = await ask(apis.recent_orders(limit))
    services = {ORDER_SERVICE: status(orders)}
    if isinstance(orders, ServiceUnavailableError):
        orders = []
        skipped = ServiceStatus(status="not asked", reason=f"{ORDER_SERVICE} is unavailable")
        services |= {POINT_SERVICE: skipped, NOTIFICATION_SERVICE: skipped}
        points: list[LedgerEntry] | ServiceUnavailableError = []
        mails: list[Delivery] | ServiceUnavailableError = []
    elif not orders:
        points, mails = [], []
        services |= {POINT_SERVICE: status(None), NOTIFICATION_SERVICE: status(None)}
    else:
        ids = [o.id for o in orders]
        points, mails = await asyncio.gather(ask(apis.points(ids)), ask(apis.deliveries(ids)))
        services |= {POINT_SERVICE: status(points), NOTIFICATION_SERVICE: status(mails)}
    return State(
        at=datetime.now(UTC),
        services=services,
        orders=[order_state(o, by_order(points), by_order(mails), heard) for o in orders],
        incidents=list(heard.incidents),
        feed=feed,
        links=links,
    )


Row = TypeVar("Row", LedgerEntry, Delivery)


def by_order(rows: Sequence[Row] | ServiceUnavailableError) -> dict[UUID, list[Row]] | None:
    """The rows grouped by order id; None when the service did not answer."""
    if isinstance(rows, ServiceUnavailableError):
        return None
    grouped: dict[UUID, list[Row]] = {}
    for row in rows:
        if row.order_id is not None:
            grouped.setdefault(row.order_id, []).append(row)
    return grouped


def order_state(
    order: OrderRow,
    points: dict[UUID, list[LedgerEntry]] | None,
    mails: dict[UUID, list[Delivery]] | None,
    heard: Heard,
) -> OrderOut:
    return OrderOut(
        order_id=order.id,
        customer_id=order.customer_id,
        status=order.status,
        total=str(order.total),
        currency=order.currency,
        lines=len(order.items),
        created_at=order.created_at,
        cancelled_at=order.cancelled_at,
        trace_id=heard.trace_ids.get(order.id),
        points=None
        if points is None
        else [
            PointsOut(kind=p.kind, points=p.points, created_at=p.created_at)
            for p in points.get(order.id, [])
        ],
        mails=None
        if mails is None
        else [
            MailOut(
                kind=m.kind, subject=m.subject, attempts=m.attempts, delivered_at=m.delivered_at
            )
            for m in mails.get(order.id, [])
        ],
    )


class SingleFlight:
    """Concurrent callers with the same key share one call: a hundred pages
    reconnecting at once after a restart cost the services one round of
    requests, not a hundred."""

    def __init__(self, call: Callable[[int], Awaitable[State]]) -> None:
        self.call = call
        self.running: dict[int, asyncio.Task[State]] = {}

    async def __call__(self, key: int) -> State:
        task = self.running.get(key)
        if task is None:
            task = asyncio.ensure_future(self.call(key))
            self.running[key] = task
            task.add_done_callback(lambda _: self.running.pop(key, None))
        return await asyncio.shield(task)
