"""Which messages each domain event sends, and where: the order service's
outgoing contract with the rest of the system."""

from __future__ import annotations

from collections.abc import Iterable

from catalogue.contracts import orders as contracts
from catalogue.contracts.notifications import NotificationKind, SendNotification, send_notification
from catalogue.topology import ORDERS
from messaging.envelope import MessageContext, OutgoingMessage, collect_event_messages
from order_service.domain.events import Event, OrderCancelled, OrderPlaced
from order_service.domain.model import Order

SOURCE = "order-service"


def outgoing_messages(event: Event, context: MessageContext) -> list[OutgoingMessage]:
    if isinstance(event, OrderPlaced):
        return [to_orders(order_placed(event), context), confirmation(event, context)]
    if isinstance(event, OrderCancelled):
        return [to_orders(order_cancelled(event), context)]
    raise TypeError(f"no routing for {type(event).__name__}")


def order_placed(event: OrderPlaced) -> contracts.OrderPlaced:
    return contracts.OrderPlaced(
        order_id=event.order_id,
        customer_id=event.customer_id,
        customer_email=event.customer_email,
        currency=event.currency,
        total=event.total,
        lines=[
            contracts.OrderLine(sku=x.sku, quantity=x.quantity, unit_price=x.unit_price)
            for x in event.lines
        ],
        placed_at=event.placed_at,
    )


def order_cancelled(event: OrderCancelled) -> contracts.OrderCancelled:
    return contracts.OrderCancelled(
        order_id=event.order_id, customer_id=event.customer_id, cancelled_at=event.cancelled_at
    )


def to_orders(
    data: contracts.OrderPlaced | contracts.OrderCancelled, context: MessageContext
) -> OutgoingMessage:
    # Events go to Kafka keyed by order id: every reader sees one order's
    # events in the order they happened.
    return OutgoingMessage(data, ORDERS, str(data.order_id), SOURCE, context)


def confirmation(event: OrderPlaced, context: MessageContext) -> OutgoingMessage:
    """A command with exactly one receiver, on RabbitMQ: tell the customer."""
    mail = SendNotification(
        kind=NotificationKind.ORDER,
        recipient=event.customer_email,
        subject=f"Your order {event.order_id} was received",
        body=(
            f"Thank you for your order of {event.total} {event.currency} "
            f"({len(event.lines)} item(s))."
        ),
    )
    return send_notification(mail, str(event.order_id), SOURCE, context)


def collect(orders: Iterable[Order], context: MessageContext) -> list[OutgoingMessage]:
    """The messages of the orders' new events, each taken off its order
    (messaging.envelope.collect_event_messages)."""
    return collect_event_messages(orders, outgoing_messages, context)
