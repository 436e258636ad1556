"""service_layer/messages.py: which messages each domain event sends, and where."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from catalogue.contracts import orders as contracts
from catalogue.contracts.notifications import PRIORITY, NotificationKind, SendNotification
from catalogue.topology import NOTIFICATION_SEND, ORDERS
from messaging.envelope import MessageContext
from order_service.domain.events import OrderCancelled, OrderPlaced
from order_service.domain.model import Line, Order
from order_service.service_layer.messages import SOURCE, collect, outgoing_messages
from tests.unit.order.builders import CUSTOMER, EMAIL

CONTEXT = MessageContext("flow-1", causation_id="request-1")
ORDER = uuid.UUID("7b0c6e8e-3f7e-4a55-9a57-3b1c2c6f0e01")
AT = datetime(2026, 1, 1, tzinfo=UTC)
LINES = (Line("a", 2, Decimal("1.50")), Line("b", 1, Decimal("10.00")))
PLACED = OrderPlaced(
    order_id=ORDER,
    customer_id=CUSTOMER,
    customer_email=EMAIL,
    currency="EUR",
    total=Decimal("13.00"),
    lines=LINES,
    placed_at=AT,
)


def test_order_placed_is_told_on_orders_keyed_by_order_with_every_fact() -> None:
    told = outgoing_messages(PLACED, CONTEXT)[0]
    assert (told.destination, told.subject, told.source, told.context) == (
        ORDERS,
        str(ORDER),
        SOURCE,
        CONTEXT,
    )
    assert told.data == contracts.OrderPlaced(
        order_id=ORDER,
        customer_id=CUSTOMER,
        customer_email=EMAIL,
        currency="EUR",
        total=Decimal("13.00"),
        lines=[
            contracts.OrderLine(sku="a", quantity=2, unit_price=Decimal("1.50")),
            contracts.OrderLine(sku="b", quantity=1, unit_price=Decimal("10.00")),
        ],
        placed_at=AT,
    )


def test_an_order_placed_is_confirmed_to_the_customer_by_mail() -> None:
    _, mail = outgoing_messages(PLACED, CONTEXT)
    assert (mail.destination, mail.subject, mail.context) == (
        NOTIFICATION_SEND,
        str(ORDER),
        CONTEXT,
    )
    assert mail.priority == PRIORITY[NotificationKind.ORDER]
    assert mail.data == SendNotification(
        kind=NotificationKind.ORDER,
        recipient=EMAIL,
        subject=f"Your order {ORDER} was received",
        body="Thank you for your order of 13.00 EUR (2 item(s)).",
    )


def test_order_cancelled_is_told_on_orders_only() -> None:
    event = OrderCancelled(order_id=ORDER, customer_id=CUSTOMER, cancelled_at=AT)
    [told] = outgoing_messages(event, CONTEXT)
    assert (told.destination, told.subject) == (ORDERS, str(ORDER))
    assert told.data == contracts.OrderCancelled(
        order_id=ORDER, customer_id=CUSTOMER, cancelled_at=AT
    )
    headers = told.binary_mode_headers()
    assert (headers["ce_type"], headers["ce_source"], headers["ce_causationid"]) == (
        "order.cancelled",
        "order-service",
        "request-1",
    )


def test_collect_sends_each_event_once_in_the_order_it_happened() -> None:
    order = Order.place(CUSTOMER, EMAIL, "EUR", list(LINES))
    order.cancel()
    first = collect([order], CONTEXT)
    assert [type(m.data) for m in first] == [
        contracts.OrderPlaced,
        SendNotification,
        contracts.OrderCancelled,
    ]
    assert collect([order], CONTEXT) == []
