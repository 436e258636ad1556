"""The point service's HTTP read API, on its health port: `GET /points?order_id=...`
(repeatable), the orders' ledger lines, for the live page's state
(messaging.reads: at most 200 ids, 422 on a bad one)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from messaging.envelope import MessageContext
from messaging.reads import by_order_ids
from point_service.service_layer import handlers
from point_service.service_layer.unit_of_work import UnitOfWorkFactory

# The context of a unit of work that only reads (it sends nothing).
READ = MessageContext("GET /points")


def read_routes(units: UnitOfWorkFactory) -> list[tuple[str, Callable[..., Any]]]:
    async def points(order_ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        entries = await handlers.order_entries(order_ids, units(READ))
        return [
            {
                "order_id": e.order_id,
                "customer_id": e.customer_id,
                "kind": e.kind.value,
                "points": e.points,
                "created_at": e.created_at,
            }
            for e in entries
        ]

    return [("/points", by_order_ids(points))]
