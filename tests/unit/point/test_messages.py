"""service_layer/messages.py: which messages each domain event sends, and where."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from catalogue.contracts.notifications import PRIORITY, NotificationKind, SendNotification
from catalogue.contracts.points import PointsGranted, PointsRevoked
from catalogue.topology import NOTIFICATION_SEND, POINTS
from messaging.envelope import MessageContext
from point_service.domain.events import (
    Event,
    OrderPointsGranted,
    OrderPointsRevoked,
    PointsAdjusted,
)
from point_service.domain.model import Account
from point_service.service_layer.messages import SOURCE, collect, outgoing_messages
from tests.unit.point.builders import CUSTOMER, EMAIL

CONTEXT = MessageContext("flow-1", causation_id="message-1")
ORDER = uuid.UUID("7b0c6e8e-3f7e-4a55-9a57-3b1c2c6f0e01")
AT = datetime(2026, 1, 1, tzinfo=UTC)
EARNED = OrderPointsGranted(
    customer_id=CUSTOMER, order_id=ORDER, customer_email=EMAIL, points=12, balance=40, at=AT
)

CHANGES: list[tuple[Event, type[PointsGranted | PointsRevoked], dict[str, Any]]] = [
    (
        EARNED,
        PointsGranted,
        {"order_id": ORDER, "points": 12, "balance": 40, "reason": "order placed"},
    ),
    (
        OrderPointsRevoked(customer_id=CUSTOMER, order_id=ORDER, points=-5, balance=0, at=AT),
        PointsRevoked,
        {"order_id": ORDER, "points": 5, "balance": 0, "reason": "order cancelled"},
    ),
    (
        PointsAdjusted(customer_id=CUSTOMER, points=20, balance=25, reason="goodwill", at=AT),
        PointsGranted,
        {"order_id": None, "points": 20, "balance": 25, "reason": "goodwill"},
    ),
    (
        PointsAdjusted(customer_id=CUSTOMER, points=-20, balance=5, reason="correction", at=AT),
        PointsRevoked,
        {"order_id": None, "points": 20, "balance": 5, "reason": "correction"},
    ),
]


@pytest.mark.parametrize(
    ("event", "contract", "fields"),
    CHANGES,
    ids=["order-grant", "order-revocation", "adjustment-up", "adjustment-down"],
)
def test_a_change_of_balance_is_an_event_on_points_keyed_by_customer(
    event: Event, contract: type[PointsGranted | PointsRevoked], fields: dict[str, Any]
) -> None:
    """A rise is told as PointsGranted, a fall as PointsRevoked of its size."""
    told = outgoing_messages(event, CONTEXT)[0]
    assert (told.destination, told.subject, told.source, told.context) == (
        POINTS,
        CUSTOMER,
        SOURCE,
        CONTEXT,
    )
    at = {"granted_at": AT} if contract is PointsGranted else {"revoked_at": AT}
    assert told.data == contract(customer_id=CUSTOMER, **fields, **at)


def test_points_an_order_earned_are_also_mailed_to_the_customer_about_the_order() -> None:
    _, mail = outgoing_messages(EARNED, CONTEXT)
    # The subject is the order, as its confirmation mail's is (GET /deliveries).
    assert (mail.destination, mail.subject, mail.context) == (
        NOTIFICATION_SEND,
        str(ORDER),
        CONTEXT,
    )
    assert mail.priority == PRIORITY[NotificationKind.POINTS]
    assert mail.data == SendNotification(
        kind=NotificationKind.POINTS,
        recipient=EMAIL,
        subject="You earned 12 points",
        body=f"Order {ORDER} earned you 12 points. Your balance is 40.",
    )


@pytest.mark.parametrize("event", [c[0] for c in CHANGES[1:]], ids=["revoked", "up", "down"])
def test_no_other_change_sends_mail(event: Event) -> None:
    assert [m.destination for m in outgoing_messages(event, CONTEXT)] == [POINTS]


def test_the_points_events_travel_as_cloudevents_keyed_by_customer() -> None:
    [message] = outgoing_messages(CHANGES[2][0], CONTEXT)
    headers = message.binary_mode_headers()
    assert (headers["ce_type"], headers["ce_source"], headers["ce_subject"]) == (
        "points.granted",
        "point-service",
        CUSTOMER,
    )
    assert headers["ce_causationid"] == "message-1"


def test_collect_sends_each_event_once_in_the_order_it_happened() -> None:
    account = Account(CUSTOMER, 0)
    account.earn(ORDER, 10, EMAIL, uuid.uuid4())
    account.adjust(-4, "correction", uuid.uuid4())
    first = collect([account], CONTEXT)
    assert [type(m.data) for m in first] == [PointsGranted, SendNotification, PointsRevoked]
    assert collect([account], CONTEXT) == []
