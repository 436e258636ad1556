"""Loyalty points: an append-only ledger per customer and the balance it sums
to. Plain Python; the rules the handlers apply."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal


class EntryKind(enum.StrEnum):
    GRANT = "grant"
    REVOKE = "revoke"
    ADJUSTMENT = "adjustment"


class InsufficientPointsError(Exception):
    """An adjustment would take the balance below zero."""


def points_for(total: Decimal, per_unit: Decimal) -> int:
    """Points an order earns: `per_unit` per whole currency unit, rounded down."""
    return int((total * per_unit).to_integral_value(rounding=ROUND_FLOOR))


@dataclass
class Account:
    customer_id: str
    balance: int

    def grant(self, points: int) -> int:
        self.balance += points
        return points

    def revoke(self, granted: int) -> int:
        """Take back what an order granted, as far as the balance allows: a
        balance never goes negative."""
        taken = min(granted, self.balance)
        self.balance -= taken
        return taken

    def adjust(self, points: int) -> int:
        if self.balance + points < 0:
            raise InsufficientPointsError(
                f"customer {self.customer_id} has {self.balance} points; cannot apply {points}"
            )
        self.balance += points
        return points
