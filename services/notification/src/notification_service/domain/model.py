"""A delivery of one notification, and what can come of an attempt at it.

A delivery is the record that a mail went out (the delivery history, kept
longer than the inbox). An attempt ends in one of four outcomes: delivered;
a duplicate (delivered before: nothing is sent); retry later, at the next
attempt; or parked, with the reason. `AttemptPolicy` decides between the last
two when the mail server refuses."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

# The kinds of mail about one order: their command's subject (CloudEvents) is
# the order's id.
ORDER_MAIL_KINDS = frozenset({"order", "points"})


def order_of(kind: str, subject: str | None) -> uuid.UUID | None:
    """The order a mail is about, if it is about one."""
    if kind not in ORDER_MAIL_KINDS or subject is None:
        return None
    try:
        return uuid.UUID(subject)
    except ValueError:
        return None


@dataclass(frozen=True)
class Delivery:
    """A mail that went out: one per message id."""

    message_id: uuid.UUID
    kind: str
    recipient: str
    subject: str
    # Delivery attempts it took (1 = first try).
    attempts: int
    # The order it is about, if any (order_of).
    order_id: uuid.UUID | None = None


@dataclass(frozen=True)
class DeliveryRecord:
    """A delivery as the history keeps it, with when it went out."""

    delivery: Delivery
    delivered_at: datetime


@dataclass(frozen=True)
class Delivered:
    pass


@dataclass(frozen=True)
class Duplicate:
    pass


@dataclass(frozen=True)
class RetryLater:
    next_attempt: int
    reason: str


@dataclass(frozen=True)
class Park:
    reason: str


Outcome = Delivered | Duplicate | RetryLater | Park


@dataclass(frozen=True)
class AttemptPolicy:
    """Attempts in all: the first, then one per retry delay (the retry queues'
    delays, from the topology)."""

    retry_delays_s: tuple[float, ...]

    @property
    def max_attempts(self) -> int:
        return len(self.retry_delays_s) + 1

    def allows(self, attempt: int) -> bool:
        return 1 <= attempt <= self.max_attempts

    def after_permanent_failure(self, reason: str) -> Park:
        """Retrying cannot help (the server answered 5xx): park at once."""
        return Park(f"permanent SMTP failure: {reason}")

    def after_temporary_failure(self, attempt: int, reason: str) -> Park | RetryLater:
        """Worth another try, unless this was the last attempt."""
        if attempt >= self.max_attempts:
            return Park(f"still failing after {attempt} attempts: {reason}")
        return RetryLater(attempt + 1, reason)
