"""Incoming messages as the other services send them, and the envelopes a
consumer reads from them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from catalogue.contracts.orders import OrderCancelled, OrderLine, OrderPlaced
from catalogue.contracts.points import GrantPoints
from catalogue.topology import ORDERS, POINT_COMMANDS
from messaging.consumer import Envelope
from messaging.envelope import Contract, Destination, MessageContext, OutgoingMessage

CUSTOMER = "c-1"
EMAIL = "c-1@example.com"
FLOW = MessageContext("flow-1")


def placed(total: str = "12.50", order_id: uuid.UUID | None = None) -> OrderPlaced:
    amount = Decimal(total)
    return OrderPlaced(
        order_id=order_id or uuid.uuid4(),
        customer_id=CUSTOMER,
        customer_email=EMAIL,
        currency="EUR",
        total=amount,
        lines=[OrderLine(sku="sku-1", quantity=1, unit_price=amount)],
        placed_at=datetime.now(UTC),
    )


def cancelled(order_id: uuid.UUID) -> OrderCancelled:
    return OrderCancelled(order_id=order_id, customer_id=CUSTOMER, cancelled_at=datetime.now(UTC))


def grant(points: int, reason: str = "goodwill") -> GrantPoints:
    return GrantPoints(customer_id=CUSTOMER, points=points, reason=reason)


def sent(data: Contract, message_id: uuid.UUID | None = None) -> OutgoingMessage:
    """`data` as its producer's outbox relay sends it: events on `orders`,
    commands on `point.commands`."""
    destination: Destination = POINT_COMMANDS if isinstance(data, GrantPoints) else ORDERS
    subject = str(getattr(data, "order_id", CUSTOMER))
    return OutgoingMessage(data, destination, subject, "tests", FLOW, id=message_id or uuid.uuid4())


def envelope_of(data: Contract, message_id: uuid.UUID | None = None) -> Envelope:
    """The envelope the consumer reads from the message's headers."""
    return Envelope.from_headers(sent(data, message_id).binary_mode_headers())
