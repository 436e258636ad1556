"""Activity notices: what the live feed shows, on Redis pub/sub.

A notice is not a message of the system's integration. It is published after
its transaction commits, at most once, never stored and never retried: a
notice nobody is subscribed to at that moment is gone, and that is fine,
because a reader of the feed (the live page) loads the current state from the
services' APIs whenever it (re)connects. Nothing may depend on a notice
arriving; use Kafka (events) or RabbitMQ (commands) for that.

Each service publishes on its own channel, ``activity.<program>``; a reader
subscribes to the pattern ``activity.*``. The body is the JSON of
`ActivityNotice`.
"""

from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

CHANNEL_PREFIX = "activity."
CHANNEL_PATTERN = f"{CHANNEL_PREFIX}*"


def channel(program: str) -> str:
    """The channel a service's program publishes on: ``activity.order-service``."""
    return f"{CHANNEL_PREFIX}{program}"


class ActivityKind(enum.StrEnum):
    ORDER_PLACED = "order.placed"
    ORDER_CANCELLED = "order.cancelled"
    POINTS_GRANTED = "points.granted"
    POINTS_REVOKED = "points.revoked"
    MAIL_SENT = "mail.sent"
    # A mail given up on after its retries, or refused as malformed: in the
    # parking lot, with the reason.
    MAIL_PARKED = "mail.parked"
    # A message a consumer could not take (malformed, unknown type), sent to a
    # dead-letter destination with the reason.
    DEAD_LETTER = "dead-letter"


class ActivityNotice(BaseModel):
    """One thing that happened, told to whoever is listening right now."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ActivityKind
    # The program that published it (order-service, point-service, ...).
    source: str
    # When the business change committed (UTC).
    at: datetime
    # The order it is about, when it is about one: the page groups by it.
    order_id: UUID | None = None
    customer_id: str | None = None
    # The W3C trace id (32 hex digits) of the work that did it: the page links
    # to the trace.
    trace_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    # Small, kind-specific facts: total and currency, points and balance, the
    # mail's kind and attempt count, a dead letter's reason.
    detail: dict[str, str | int | float] = Field(default_factory=dict)
