"""Loyalty points: an append-only ledger per customer and the balance it sums
to. Plain Python, no I/O: the rules the handlers apply. Changing an account
books ledger entries and records the domain events (domain/events.py) that
describe the change; the repository stores both with the balance."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal

from point_service.domain.events import (
    Event,
    OrderPointsGranted,
    OrderPointsRevoked,
    PointsAdjusted,
)


class EntryKind(enum.StrEnum):
    GRANT = "grant"
    REVOKE = "revoke"
    ADJUSTMENT = "adjustment"


class InsufficientPointsError(Exception):
    """An adjustment would take the balance below zero."""


@dataclass(frozen=True)
class Entry:
    """A line of the ledger: signed points (positive adds), why, and the id of
    the message that caused it."""

    customer_id: str
    kind: EntryKind
    points: int
    reason: str
    cause: uuid.UUID
    order_id: uuid.UUID | None = None


@dataclass(frozen=True)
class OrderEntry:
    """An order's line of the ledger as booked: signed points, and when."""

    order_id: uuid.UUID
    customer_id: str
    kind: EntryKind
    points: int
    created_at: datetime


def points_for(total: Decimal, per_unit: Decimal) -> int:
    """Points an order earns: `per_unit` per whole currency unit, rounded down."""
    return int((total * per_unit).to_integral_value(rounding=ROUND_FLOOR))


@dataclass
class Account:
    customer_id: str
    balance: int
    # Booked since the account was read: the repository appends them on save.
    entries: list[Entry] = field(default_factory=list, repr=False, compare=False)
    events: list[Event] = field(default_factory=list, repr=False, compare=False)

    def earn(self, order_id: uuid.UUID, points: int, customer_email: str, cause: uuid.UUID) -> None:
        """Grant what an order earned."""
        self._book(
            Entry(self.customer_id, EntryKind.GRANT, points, f"order {order_id}", cause, order_id)
        )
        self.events.append(
            OrderPointsGranted(
                customer_id=self.customer_id,
                points=points,
                balance=self.balance,
                order_id=order_id,
                customer_email=customer_email,
            )
        )

    def revoke(self, order_id: uuid.UUID, granted: int, cause: uuid.UUID) -> int:
        """Take back what an order granted, as far as the balance allows (a
        balance never goes negative); returns what was taken. The entry is
        booked even for 0 points: the order is settled. An event only if
        something was taken."""
        taken = min(granted, self.balance)
        reason = f"order {order_id} cancelled"
        self._book(Entry(self.customer_id, EntryKind.REVOKE, -taken, reason, cause, order_id))
        if taken:
            self.events.append(
                OrderPointsRevoked(
                    customer_id=self.customer_id,
                    points=-taken,
                    balance=self.balance,
                    order_id=order_id,
                )
            )
        return taken

    def adjust(self, points: int, reason: str, cause: uuid.UUID) -> None:
        if self.balance + points < 0:
            raise InsufficientPointsError(
                f"customer {self.customer_id} has {self.balance} points; cannot apply {points}"
            )
        self._book(Entry(self.customer_id, EntryKind.ADJUSTMENT, points, reason, cause))
        self.events.append(
            PointsAdjusted(
                customer_id=self.customer_id, points=points, balance=self.balance, reason=reason
            )
        )

    def _book(self, entry: Entry) -> None:
        self.balance += entry.points
        self.entries.append(entry)
