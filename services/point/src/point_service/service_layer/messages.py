"""Which messages each domain event sends, and where: the point service's
outgoing contract with the rest of the system."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from catalogue.contracts.notifications import NotificationKind, SendNotification, send_notification
from catalogue.contracts.points import PointsGranted, PointsRevoked
from catalogue.topology import POINTS
from messaging.envelope import MessageContext, OutgoingMessage, collect_event_messages
from point_service.domain.events import (
    Event,
    OrderPointsGranted,
    OrderPointsRevoked,
    PointsChanged,
)
from point_service.domain.model import Account

SOURCE = "point-service"


def outgoing_messages(event: Event, context: MessageContext) -> list[OutgoingMessage]:
    if isinstance(event, OrderPointsGranted):
        granted = points_event(event, "order placed", event.order_id)
        return [to_points(granted, context), points_mail(event, context)]
    if isinstance(event, OrderPointsRevoked):
        return [to_points(points_event(event, "order cancelled", event.order_id), context)]
    return [to_points(points_event(event, event.reason), context)]


def points_event(
    event: PointsChanged, reason: str, order_id: uuid.UUID | None = None
) -> PointsGranted | PointsRevoked:
    """A rise of the balance is told as PointsGranted, a fall as PointsRevoked
    of its size."""
    if event.points > 0:
        return PointsGranted(
            customer_id=event.customer_id,
            order_id=order_id,
            points=event.points,
            balance=event.balance,
            reason=reason,
            granted_at=event.at,
        )
    return PointsRevoked(
        customer_id=event.customer_id,
        order_id=order_id,
        points=-event.points,
        balance=event.balance,
        reason=reason,
        revoked_at=event.at,
    )


def to_points(data: PointsGranted | PointsRevoked, context: MessageContext) -> OutgoingMessage:
    # Keyed by customer: a reader of `points` sees one customer's changes in order.
    return OutgoingMessage(data, POINTS, data.customer_id, SOURCE, context)


def points_mail(event: OrderPointsGranted, context: MessageContext) -> OutgoingMessage:
    """A command with exactly one receiver, on RabbitMQ: tell the customer.
    Its subject is the order, as the order's confirmation mail's is: both
    mails of an order are found by its id (notification-service's
    GET /deliveries)."""
    mail = SendNotification(
        kind=NotificationKind.POINTS,
        recipient=event.customer_email,
        subject=f"You earned {event.points} points",
        body=f"Order {event.order_id} earned you {event.points} points. "
        f"Your balance is {event.balance}.",
    )
    return send_notification(mail, str(event.order_id), SOURCE, context)


def collect(accounts: Iterable[Account], context: MessageContext) -> list[OutgoingMessage]:
    """The messages of the accounts' new events, each taken off its account
    (messaging.envelope.collect_event_messages)."""
    return collect_event_messages(accounts, outgoing_messages, context)
