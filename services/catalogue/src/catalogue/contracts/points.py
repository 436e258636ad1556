"""Messages of the point service: events on the Kafka topic ``points`` keyed by
customer id, the GrantPoints command on ``point.commands``, and the
GetPointBalance request/reply on ``point.balance``."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import UUID

from pydantic import Field, field_validator

from messaging.envelope import Contract


class PointsGranted(Contract):
    TYPE: ClassVar[str] = "points.granted"

    customer_id: str
    order_id: UUID | None
    points: int = Field(gt=0)
    balance: int = Field(ge=0)
    reason: str
    granted_at: datetime


class PointsRevoked(Contract):
    TYPE: ClassVar[str] = "points.revoked"

    customer_id: str
    order_id: UUID | None
    points: int = Field(gt=0)
    balance: int = Field(ge=0)
    reason: str
    revoked_at: datetime


class GrantPoints(Contract):
    """Do this: adjust a customer's points by hand (positive or negative)."""

    TYPE: ClassVar[str] = "point.grant"

    customer_id: str = Field(min_length=1, max_length=64)
    points: int = Field(ge=-1_000_000, le=1_000_000)
    reason: str = Field(min_length=1, max_length=200)

    @field_validator("points")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must not be 0")
        return value


class GetPointBalance(Contract):
    TYPE: ClassVar[str] = "point.balance.get"

    customer_id: str = Field(min_length=1, max_length=64)


class PointBalance(Contract):
    TYPE: ClassVar[str] = "point.balance"

    customer_id: str
    balance: int
    as_of: datetime
