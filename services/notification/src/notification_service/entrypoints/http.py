"""The notification service's HTTP read API, on its health port:
`GET /deliveries?order_id=...` (repeatable), the mails about those orders that
went out, for the live page's state (messaging.reads: at most 200 ids, 422 on
a bad one)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from messaging.reads import by_order_ids
from notification_service.service_layer import handlers
from notification_service.service_layer.unit_of_work import UnitOfWorkFactory


def read_routes(units: UnitOfWorkFactory) -> list[tuple[str, Callable[..., Any]]]:
    async def deliveries(order_ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        records = await handlers.deliveries_of_orders(order_ids, units())
        return [
            {
                "order_id": r.delivery.order_id,
                "kind": r.delivery.kind,
                "recipient": r.delivery.recipient,
                "subject": r.delivery.subject,
                "attempts": r.delivery.attempts,
                "delivered_at": r.delivered_at,
            }
            for r in records
        ]

    return [("/deliveries", by_order_ids(deliveries))]
