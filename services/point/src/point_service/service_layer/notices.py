"""Which activity notice each use case announces (catalogue.contracts.activity):
what the live feed shows of a customer's points. The unit of work publishes
them after its commit, best effort (messaging.activity); a dead letter is
announced by the door once it is published."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from catalogue.contracts.activity import ActivityKind, ActivityNotice
from point_service.domain.model import Account
from point_service.service_layer.messages import SOURCE


def points_changed(
    account: Account, points: int, order_id: uuid.UUID | None = None, reason: str | None = None
) -> ActivityNotice:
    """`points` (signed: positive adds) moved the account to its balance: a
    grant, or a revocation of their size."""
    detail: dict[str, str | int | float] = {"points": abs(points), "balance": account.balance}
    if reason is not None:
        detail["reason"] = reason
    return ActivityNotice(
        kind=ActivityKind.POINTS_GRANTED if points > 0 else ActivityKind.POINTS_REVOKED,
        source=SOURCE,
        at=datetime.now(UTC),
        order_id=order_id,
        customer_id=account.customer_id,
        detail=detail,
    )


def dead_letter(order_id: uuid.UUID | None, source: str, reason: str) -> ActivityNotice:
    """A message from `source` (a topic, a queue) that could not be taken."""
    return ActivityNotice(
        kind=ActivityKind.DEAD_LETTER,
        source=SOURCE,
        at=datetime.now(UTC),
        order_id=order_id,
        detail={"from": source, "reason": reason[:300]},
    )
