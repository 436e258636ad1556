"""Which activity notice each use case announces (catalogue.contracts.activity):
what the live feed shows of an order. The unit of work publishes them after
its commit, best effort (messaging.activity)."""

from __future__ import annotations

from datetime import UTC, datetime

from catalogue.contracts.activity import ActivityKind, ActivityNotice
from order_service.domain.model import Order
from order_service.service_layer.messages import SOURCE


def order_placed(order: Order) -> ActivityNotice:
    return ActivityNotice(
        kind=ActivityKind.ORDER_PLACED,
        source=SOURCE,
        at=order.created_at,
        order_id=order.id,
        customer_id=order.customer_id,
        # The total as the API shows it (a decimal string, not a float).
        detail={"total": str(order.total), "currency": order.currency, "lines": len(order.lines)},
    )


def order_cancelled(order: Order) -> ActivityNotice:
    return ActivityNotice(
        kind=ActivityKind.ORDER_CANCELLED,
        source=SOURCE,
        at=order.cancelled_at or datetime.now(UTC),
        order_id=order.id,
        customer_id=order.customer_id,
    )
