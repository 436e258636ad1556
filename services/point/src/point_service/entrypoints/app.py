"""The point service's message doors (FastStream), thin: parse, call a handler.

- Kafka `orders`, consumer group `point-service`: OrderPlaced and OrderCancelled,
  one message at a time per partition; the offset is committed only after the
  handler's transaction has committed (AckPolicy.NACK_ON_ERROR: acked on success;
  an error that escapes the dead-letter middleware rewinds to the message
  instead of skipping it).
- RabbitMQ `point.commands`: the GrantPoints command, acked after its transaction.
- RabbitMQ `point.balance`: GetPointBalance request/reply.

Bad messages go to `orders.point-service.dlt` / `point.commands.dead-letter`
through the dead-letter middleware; the consumers keep going. A malformed
request on `point.balance` gets no answer: it is rejected (a read expires
with its caller's timeout; there is nothing to re-drive), logged and counted.
Only `point.balance` answers, and only through direct reply-to: a `reply_to`
on an event or a command, or one naming another queue or exchange, would make
point-service publish wherever a sender says, and a reply that fails would
redeliver the message for ever.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiokafka.admin import AIOKafkaAdminClient
from faststream import AckPolicy, Depends
from faststream.asgi import AsgiFastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.rabbit import Channel, RabbitBroker, RabbitMessage, RabbitQueue
from faststream.rabbit.opentelemetry import RabbitTelemetryMiddleware
from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
from faststream.specification import AsyncAPI
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY, Histogram
from sqlalchemy.ext.asyncio import async_sessionmaker

from catalogue.contracts.notifications import SendNotification
from catalogue.contracts.orders import OrderCancelled, OrderPlaced
from catalogue.contracts.points import (
    GetPointBalance,
    GrantPoints,
    PointBalance,
    PointsGranted,
    PointsRevoked,
)
from catalogue.topology import (
    DEAD_LETTER_EXCHANGE,
    NOTIFICATION_SEND,
    ORDERS,
    ORDERS_POINT_SERVICE_DLT,
    POINT_BALANCE,
    POINT_COMMANDS,
    POINTS,
)
from messaging.asyncapi import document_outbox
from messaging.connections import kafka_client_options, rabbitmq_ssl_context
from messaging.consumer import (
    UNREADABLE,
    DeadLetterPolicy,
    Envelope,
    PoisonMessageError,
    envelope,
    has_type,
    parse_kafka_record,
    parse_rabbit_message,
)
from messaging.database import build_engine
from messaging.deadletter import kafka_dead_letter_topic, rabbit_dead_letter_queue
from messaging.envelope import Contract, MessageContext
from messaging.faststream_security import kafka_security, rabbitmq_security
from messaging.health import database_check, health_routes
from messaging.inbox.retention import inbox_retention
from messaging.startup import ProvisionedFastStream, kafka_topics_exist, rabbit_queues_exist
from messaging.unavailable import unavailable
from point_service.adapters.orm import inbox
from point_service.domain.model import InsufficientPointsError
from point_service.entrypoints.lag import LagReporter
from point_service.service_layer import handlers
from point_service.service_layer.unit_of_work import UnitOfWork
from point_service.settings import PointServiceSettings

# FastStream logs through the process's JSON logging; per-message access lines
# at DEBUG.
LOGGER = logging.getLogger("point_service.faststream")

ORDER_TO_POINTS = Histogram(
    "order_to_points_seconds",
    "From an order being placed to its points being granted (end to end, first delivery).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

# Never processable as they are: straight to the dead-letter destination.
POISON = (*UNREADABLE, InsufficientPointsError)
# The answer goes to the caller's direct reply-to pseudo-queue (RabbitMQ
# delivers the request with reply_to `amq.rabbitmq.reply-to.<caller>`), never
# to a queue or exchange the request names.
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to."


def expect_version(env: Envelope, contract: type[Contract]) -> None:
    if env.schema_version != contract.SCHEMA_VERSION:
        raise PoisonMessageError(
            f"{env.type} schema version {env.schema_version} is not supported "
            f"(this consumer reads {contract.SCHEMA_VERSION})"
        )


def create_app(settings: PointServiceSettings, tracer_provider: TracerProvider) -> AsgiFastStream:
    engine = build_engine(settings, settings.otel_service_name)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    def uow(env: Envelope = Depends(envelope)) -> UnitOfWork:  # noqa: B008
        return UnitOfWork(sessions, env.caused())

    kafka = KafkaBroker(
        settings.kafka_bootstrap_servers,
        security=kafka_security(settings),
        acks="all",
        enable_idempotence=True,
        parser=parse_kafka_record,
        logger=LOGGER,
        log_level=logging.DEBUG,
        middlewares=[
            KafkaTelemetryMiddleware(tracer_provider=tracer_provider),
            KafkaPrometheusMiddleware(registry=REGISTRY, app_name=settings.otel_service_name),
        ],
    )
    rabbit = RabbitBroker(
        settings.rabbitmq_url(),
        security=rabbitmq_security(settings),
        parser=parse_rabbit_message,
        logger=LOGGER,
        log_level=logging.DEBUG,
        middlewares=[
            RabbitTelemetryMiddleware(tracer_provider=tracer_provider),
            RabbitPrometheusMiddleware(registry=REGISTRY, app_name=settings.otel_service_name),
        ],
    )

    # Innermost middlewares: retries and dead letters happen inside the message's
    # span and metrics.
    kafka.add_middleware(
        DeadLetterPolicy(
            source=ORDERS.topic,
            sink=kafka_dead_letter_topic(
                kafka, ORDERS_POINT_SERVICE_DLT.topic, settings.consumer_group
            ),
            transient=unavailable,
            poison=POISON,
            max_attempts=settings.consumer_max_attempts,
        )
    )
    rabbit.add_middleware(
        DeadLetterPolicy(
            source=POINT_COMMANDS.routing_key,
            sink=rabbit_dead_letter_queue(rabbit, DEAD_LETTER_EXCHANGE, POINT_COMMANDS.routing_key),
            transient=unavailable,
            poison=POISON,
            max_attempts=settings.consumer_max_attempts,
            applies=lambda msg: msg.raw_message.routing_key == POINT_COMMANDS.routing_key,
        )
    )

    orders = kafka.subscriber(
        ORDERS.topic,
        group_id=settings.consumer_group,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        no_reply=True,
        title="orders (point-service)",
        description="Order events; grants and revokes points.",
    )

    @orders(filter=has_type(OrderPlaced.TYPE))
    async def on_order_placed(
        body: OrderPlaced,
        env: Envelope = Depends(envelope),  # noqa: B008
        work: UnitOfWork = Depends(uow),  # noqa: B008
    ) -> None:
        expect_version(env, OrderPlaced)
        if await handlers.order_placed(body, env, work, settings.points_per_currency_unit):
            ORDER_TO_POINTS.observe((datetime.now(UTC) - body.placed_at).total_seconds())

    @orders(filter=has_type(OrderCancelled.TYPE))
    async def on_order_cancelled(
        body: OrderCancelled,
        env: Envelope = Depends(envelope),  # noqa: B008
        work: UnitOfWork = Depends(uow),  # noqa: B008
    ) -> None:
        expect_version(env, OrderCancelled)
        await handlers.order_cancelled(body, env, work)

    @orders
    async def on_unknown_order_message(env: Envelope = Depends(envelope)) -> None:  # noqa: B008
        raise PoisonMessageError(f"no handler for message type {env.type!r}")

    channel = Channel(prefetch_count=settings.rabbitmq_prefetch)

    @rabbit.subscriber(
        RabbitQueue(POINT_COMMANDS.routing_key, durable=True, declare=False),
        channel=channel,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        no_reply=True,
        title="point.commands",
        description="GrantPoints: a manual adjustment, exactly one receiver.",
    )
    async def on_grant_points(
        body: GrantPoints,
        env: Envelope = Depends(envelope),  # noqa: B008
        work: UnitOfWork = Depends(uow),  # noqa: B008
    ) -> None:
        if env.type != GrantPoints.TYPE:
            raise PoisonMessageError(f"point.commands takes {GrantPoints.TYPE}, not {env.type!r}")
        expect_version(env, GrantPoints)
        await handlers.grant_points(body, env, work)

    @rabbit.subscriber(
        RabbitQueue(POINT_BALANCE.routing_key, durable=True, declare=False),
        channel=channel,
        # A request that cannot be answered is dropped: no dead-letter queue,
        # no retry (the caller has given up after its timeout).
        ack_policy=AckPolicy.REJECT_ON_ERROR,
        title="point.balance",
        description="GetPointBalance: request/reply (direct reply-to and correlation id).",
    )
    async def on_get_balance(body: GetPointBalance, *, message: RabbitMessage) -> PointBalance:
        if not message.reply_to.startswith(DIRECT_REPLY_TO):
            raise PoisonMessageError(
                f"point.balance answers through direct reply-to only, not {message.reply_to!r}"
            )
        # A read: no inbox, no outbox, nothing to deduplicate.
        return await handlers.point_balance(
            body.customer_id, UnitOfWork(sessions, MessageContext("point.balance"))
        )

    broker_checks = [lambda: kafka.ping(2), lambda: rabbit.ping(2)]
    lag = LagReporter(orders, settings.consumer_group)
    retention = inbox_retention(sessions, inbox, settings)

    async def dispose() -> None:
        await lag.stop()
        await engine.dispose()

    document_outbox(kafka, POINTS, PointsGranted)
    document_outbox(kafka, POINTS, PointsRevoked)
    document_outbox(rabbit, NOTIFICATION_SEND, SendNotification)

    def kafka_admin() -> AIOKafkaAdminClient:
        return AIOKafkaAdminClient(**kafka_client_options(settings))

    consumed = [POINT_COMMANDS.routing_key, POINT_BALANCE.routing_key]
    return ProvisionedFastStream(
        kafka,
        rabbit,
        topology=[
            ("kafka topic " + ORDERS.topic, kafka_topics_exist(kafka_admin, [ORDERS.topic])),
            (
                "rabbitmq queues",
                rabbit_queues_exist(
                    settings.rabbitmq_url(),
                    consumed,
                    ssl_context=rabbitmq_ssl_context(settings),
                ),
            ),
        ],
        startup_timeout_s=settings.startup_timeout_s,
        logger=LOGGER,
        asgi_routes=health_routes([database_check(sessions), *broker_checks]),
        asyncapi_path="/asyncapi",
        after_startup=[lag.start, retention.start],
        on_shutdown=[retention.stop],
        after_shutdown=[dispose],
        specification=AsyncAPI(
            kafka,
            rabbit,
            title="point-service",
            version="1",
            description=__doc__.split("\n\n")[0] if __doc__ else None,
        ),
    )
