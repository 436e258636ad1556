"""Which activity notice the delivery of a mail announces
(catalogue.contracts.activity): what the live feed shows of an order's mails.
A delivered mail is announced by the unit of work after its commit; a parked
one by the door, once it is in the parking lot (messaging.activity: best
effort)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from catalogue.contracts.activity import ActivityKind, ActivityNotice

SOURCE = "notification-service"


def mail_sent(kind: str, attempts: int, order_id: uuid.UUID | None) -> ActivityNotice:
    return ActivityNotice(
        kind=ActivityKind.MAIL_SENT,
        source=SOURCE,
        at=datetime.now(UTC),
        order_id=order_id,
        detail={"mail": kind, "attempts": attempts},
    )


def mail_parked(kind: str | None, order_id: uuid.UUID | None, reason: str) -> ActivityNotice:
    """`kind` is None when the command could not be read."""
    detail: dict[str, str | int | float] = {"reason": reason[:300]}
    if kind is not None:
        detail["mail"] = kind
    return ActivityNotice(
        kind=ActivityKind.MAIL_PARKED,
        source=SOURCE,
        at=datetime.now(UTC),
        order_id=order_id,
        detail=detail,
    )
