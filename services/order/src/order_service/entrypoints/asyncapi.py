"""The order service's AsyncAPI document. Its HTTP API is in OpenAPI; its
messages all leave through the outbox, plus one request/reply to point-service."""

from __future__ import annotations

from faststream.kafka import KafkaBroker
from faststream.rabbit import RabbitBroker, RabbitExchange, RabbitQueue
from faststream.specification import AsyncAPI

from catalogue.contracts.notifications import SendNotification
from catalogue.contracts.orders import OrderCancelled, OrderPlaced
from catalogue.contracts.points import GetPointBalance
from catalogue.topology import NOTIFICATION_SEND, ORDERS, POINT_BALANCE
from messaging.asyncapi import document_outbox


def specification() -> AsyncAPI:
    kafka = KafkaBroker()
    rabbit = RabbitBroker()
    document_outbox(kafka, ORDERS, OrderPlaced)
    document_outbox(kafka, ORDERS, OrderCancelled)
    document_outbox(rabbit, NOTIFICATION_SEND, SendNotification)
    rabbit.publisher(
        RabbitQueue(POINT_BALANCE.routing_key, declare=False),
        exchange=RabbitExchange(POINT_BALANCE.exchange, declare=False),
        routing_key=POINT_BALANCE.routing_key,
        title=f"{POINT_BALANCE.routing_key}:{GetPointBalance.TYPE}",
        description="Request/reply with a 300 ms timeout and the same expiration; "
        "answered with a PointBalance, or the summary goes without it.",
        schema=GetPointBalance,
    )
    return AsyncAPI(
        kafka,
        rabbit,
        title="order-service",
        version="1",
        description="Events about orders on Kafka, commands to the notification service "
        "on RabbitMQ, all through the transactional outbox.",
    )
