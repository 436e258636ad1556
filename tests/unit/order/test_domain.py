"""The order aggregate and what it sends, without any I/O."""

from __future__ import annotations

from decimal import Decimal

import pytest

from catalogue.contracts.notifications import NotificationKind, SendNotification
from messaging.envelope import KafkaTopic, MessageContext, RabbitRoute
from messaging.outbox.writer import outbox_row
from order_service.domain.events import OrderCancelled, OrderPlaced
from order_service.domain.model import Line, Order, OrderStatus
from order_service.service_layer.messages import outgoing_messages


def placed() -> Order:
    return Order.place(
        "c-1",
        "c1@example.com",
        "EUR",
        [Line("a", 2, Decimal("1.50")), Line("b", 1, Decimal("10.00"))],
    )


def test_placing_records_one_order_placed_with_the_total() -> None:
    order = placed()
    assert order.total == Decimal("13.00")
    (event,) = order.events
    assert isinstance(event, OrderPlaced)
    assert (event.order_id, event.total, len(event.lines)) == (order.id, Decimal("13.00"), 2)


def test_cancelling_twice_records_one_event() -> None:
    order = placed()
    order.events.clear()
    order.cancel()
    first_cancelled_at = order.cancelled_at
    order.cancel()
    assert order.status is OrderStatus.CANCELLED
    assert order.cancelled_at == first_cancelled_at
    assert [type(e) for e in order.events] == [OrderCancelled]


def test_order_placed_is_an_event_on_kafka_and_the_confirmation_a_command_on_rabbitmq() -> None:
    order = placed()
    context = MessageContext("corr-1", causation_id="req-1")
    event_message, command_message = outgoing_messages(order.events[0], context)

    assert event_message.destination == KafkaTopic("orders")
    assert event_message.subject == str(order.id)
    assert isinstance(command_message.data, SendNotification)
    assert command_message.data.kind is NotificationKind.ORDER
    assert command_message.destination == RabbitRoute("commands", "notification.send")
    assert command_message.priority == 7


def test_an_outbox_row_carries_every_cloudevents_attribute_and_the_ordering_key() -> None:
    order = placed()
    message = outgoing_messages(order.events[0], MessageContext("corr-1", "req-1"))[0]
    row = outbox_row(message)
    ce = row["headers"]["ce"]
    assert ce["id"] == str(message.id) == str(row["message_id"])
    assert ce["specversion"] == "1.0"
    assert ce["type"] == "order.placed"
    assert ce["source"] == "order-service"
    assert ce["subject"] == str(order.id)
    assert ce["schemaversion"] == "1"
    assert (ce["correlationid"], ce["causationid"]) == ("corr-1", "req-1")
    assert ce["time"].endswith("Z")
    assert row["ordering_key"] == str(order.id)
    assert (row["destination_kind"], row["destination"], row["routing_key"]) == (
        "kafka",
        "orders",
        None,
    )
    assert row["payload"]["total"] == "13.00"


def test_an_unknown_event_type_has_no_route() -> None:
    command = SendNotification(
        kind=NotificationKind.ORDER, recipient="a@b.c", subject="s", body="b"
    )
    with pytest.raises(TypeError, match="no routing"):
        outgoing_messages(command, MessageContext("c"))  # type: ignore[arg-type]
