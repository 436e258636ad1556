"""The points rules (domain/model.py): plain Python."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from point_service.domain.events import OrderPointsGranted, OrderPointsRevoked, PointsAdjusted
from point_service.domain.model import (
    Account,
    Entry,
    EntryKind,
    InsufficientPointsError,
    points_for,
)

ORDER = uuid.uuid4()
CAUSE = uuid.uuid4()


@pytest.mark.parametrize(
    ("total", "per_unit", "points"),
    [("12.50", "1", 12), ("0.99", "1", 0), ("10.99", "2.5", 27), ("100", "0", 0)],
)
def test_an_order_earns_whole_points_rounded_down(total: str, per_unit: str, points: int) -> None:
    assert points_for(Decimal(total), Decimal(per_unit)) == points


def test_earning_books_a_grant_and_records_it_with_the_new_balance() -> None:
    account = Account("c", 5)
    account.earn(ORDER, 10, "c@example.com", CAUSE)
    assert account.balance == 15
    assert account.entries == [Entry("c", EntryKind.GRANT, 10, f"order {ORDER}", CAUSE, ORDER)]
    [event] = account.events
    assert isinstance(event, OrderPointsGranted)
    assert (event.order_id, event.points, event.balance, event.customer_email) == (
        ORDER,
        10,
        15,
        "c@example.com",
    )


def test_a_revocation_takes_at_most_the_balance() -> None:
    account = Account("c", 3)
    assert account.revoke(ORDER, 10, CAUSE) == 3
    assert account.balance == 0
    [entry] = account.entries
    assert (entry.kind, entry.points, entry.reason) == (
        EntryKind.REVOKE,
        -3,
        f"order {ORDER} cancelled",
    )
    [event] = account.events
    assert isinstance(event, OrderPointsRevoked)
    assert (event.points, event.balance) == (-3, 0)


def test_a_revocation_of_nothing_settles_the_order_without_an_event() -> None:
    account = Account("c", 0)
    assert account.revoke(ORDER, 10, CAUSE) == 0
    assert [(e.kind, e.points) for e in account.entries] == [(EntryKind.REVOKE, 0)]
    assert account.events == []


def test_an_adjustment_below_zero_is_refused_and_changes_nothing() -> None:
    account = Account("c", 4)
    with pytest.raises(InsufficientPointsError, match="customer c has 4 points; cannot apply -5"):
        account.adjust(-5, "too much", CAUSE)
    assert (account.balance, account.entries, account.events) == (4, [], [])


def test_an_adjustment_to_exactly_zero_is_allowed() -> None:
    account = Account("c", 4)
    account.adjust(-4, "spent", CAUSE)
    assert account.balance == 0
    assert account.entries == [Entry("c", EntryKind.ADJUSTMENT, -4, "spent", CAUSE)]
    [event] = account.events
    assert event == PointsAdjusted(
        customer_id="c", points=-4, balance=0, reason="spent", at=event.at
    )
