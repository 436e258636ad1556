"""What happened to a customer's points: the point service's own domain
events, plain data. The service layer (service_layer/messages.py) decides
which messages each one sends, and where; nothing here knows the wire."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class PointsChanged:
    """A customer's balance moved by `points` (signed: positive adds) to `balance`."""

    customer_id: str
    points: int
    balance: int
    at: datetime = field(default_factory=_now)


@dataclass(frozen=True, kw_only=True)
class OrderPointsGranted(PointsChanged):
    """An order earned its customer points; the customer is told at `customer_email`."""

    order_id: uuid.UUID
    customer_email: str


@dataclass(frozen=True, kw_only=True)
class OrderPointsRevoked(PointsChanged):
    """A cancelled order's points were taken back (as far as the balance went)."""

    order_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class PointsAdjusted(PointsChanged):
    """A manual adjustment."""

    reason: str


Event = OrderPointsGranted | OrderPointsRevoked | PointsAdjusted
