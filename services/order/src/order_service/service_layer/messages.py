"""Which messages each domain event sends, and where: the order service's
outgoing contract with the rest of the system."""

from __future__ import annotations

from catalogue.contracts.notifications import PRIORITY, NotificationKind, SendNotification
from catalogue.contracts.orders import OrderCancelled, OrderPlaced
from catalogue.topology import NOTIFICATION_SEND, ORDERS
from messaging.envelope import Contract, MessageContext, OutgoingMessage
from order_service.domain.model import Order

SOURCE = "order-service"


def outgoing_messages(
    order: Order, event: Contract, context: MessageContext
) -> list[OutgoingMessage]:
    subject = str(order.id)
    # Events go to Kafka keyed by order id: every reader sees one order's
    # events in the order they happened.
    messages = [OutgoingMessage(event, ORDERS, subject, SOURCE, context)]
    if isinstance(event, OrderPlaced):
        # A command with exactly one receiver, on RabbitMQ.
        confirmation = SendNotification(
            kind=NotificationKind.ORDER,
            recipient=order.customer_email,
            subject=f"Your order {order.id} was received",
            body=(
                f"Thank you for your order of {order.total} {order.currency} "
                f"({len(order.lines)} item(s))."
            ),
        )
        messages.append(
            OutgoingMessage(
                confirmation,
                NOTIFICATION_SEND,
                subject,
                SOURCE,
                context,
                priority=PRIORITY[NotificationKind.ORDER],
            )
        )
    elif not isinstance(event, OrderCancelled):
        raise TypeError(f"no routing for {type(event).__name__}")
    return messages
