"""The point service's message doors, thin: check the envelope, call a handler.

- Kafka `orders`, consumer group `point-service`: OrderPlaced and OrderCancelled,
  one message at a time per partition; an offset is committed only after the
  handler's transaction has committed (AckPolicy.NACK_ON_ERROR: acked on success;
  an error that escapes the dead-letter middleware rewinds to the message
  instead of skipping it), a few at a time (messaging.offsets: every
  KAFKA_COMMIT_INTERVAL_MS, before a rebalance and at shutdown).
- RabbitMQ `point.commands`: the GrantPoints command, acked after its transaction.
- RabbitMQ `point.balance`: GetPointBalance request/reply.

Bad messages go to `orders.point-service.dlt` / `point.commands.dead-letter`
through the dead-letter middleware (entrypoints/brokers.py); the consumers
keep going. A malformed request on `point.balance` gets no answer: it is
rejected (a read expires with its caller's timeout; there is nothing to
re-drive), logged and counted. Only `point.balance` answers, and only through
direct reply-to: a `reply_to` on an event or a command, or one naming another
queue or exchange, would make point-service publish wherever a sender says,
and a reply that fails would redeliver the message for ever.

The routers are declared here, once per process; the broker factory includes
them. The consumer group and the prefetch are settings (CONSUMER_GROUP,
RABBITMQ_PREFETCH) that FastStream takes at declaration and reads when a
subscriber starts: `use_settings` sets them, from the broker factory.
"""

from __future__ import annotations

from datetime import UTC, datetime

from faststream import AckPolicy
from faststream.kafka import KafkaRouter
from faststream.rabbit import Channel, RabbitQueue, RabbitRouter
from prometheus_client import Histogram

from catalogue.contracts.orders import OrderCancelled, OrderPlaced
from catalogue.contracts.points import GetPointBalance, GrantPoints, PointBalance
from catalogue.topology import ORDERS, POINT_BALANCE, POINT_COMMANDS, POINT_SERVICE_GROUP
from messaging.consumer import IncomingEnvelope, PoisonMessageError, expect_version, has_type
from messaging.context import RabbitDelivery
from messaging.envelope import MessageContext
from messaging.offsets import DeferredCommits
from point_service.entrypoints.dependencies import Settings, UnitsOfWork
from point_service.service_layer import handlers
from point_service.settings import PointServiceSettings

ORDER_TO_POINTS = Histogram(
    "order_to_points_seconds",
    "From an order being placed to its points being granted (end to end, first delivery).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

# The answer goes to the caller's direct reply-to pseudo-queue (RabbitMQ
# delivers the request with reply_to `amq.rabbitmq.reply-to.<caller>`), never
# to a queue or exchange the request names.
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to."


# -- Kafka `orders` -------------------------------------------------------------
orders = KafkaRouter()
# The subscriber's acks record offsets, committed a few at a time.
order_offsets = DeferredCommits()
order_events = orders.subscriber(
    ORDERS.topic,
    group_id=POINT_SERVICE_GROUP,
    auto_offset_reset="earliest",
    ack_policy=AckPolicy.NACK_ON_ERROR,
    parser=order_offsets.parse,
    listener=order_offsets,
    no_reply=True,
    title="orders (point-service)",
    description="Order events; grants and revokes points.",
)


@order_events(filter=has_type(OrderPlaced.TYPE))
async def on_order_placed(
    body: OrderPlaced, env: IncomingEnvelope, units: UnitsOfWork, settings: Settings
) -> None:
    expect_version(env, OrderPlaced)
    uow = units(env.caused())
    if await handlers.order_placed(body, env, uow, settings.points_per_currency_unit):
        ORDER_TO_POINTS.observe((datetime.now(UTC) - body.placed_at).total_seconds())


@order_events(filter=has_type(OrderCancelled.TYPE))
async def on_order_cancelled(
    body: OrderCancelled, env: IncomingEnvelope, units: UnitsOfWork
) -> None:
    expect_version(env, OrderCancelled)
    await handlers.order_cancelled(body, env, units(env.caused()))


@order_events
async def on_unknown_order_message(env: IncomingEnvelope) -> None:
    raise PoisonMessageError(f"no handler for message type {env.type!r}")


# -- RabbitMQ `point.commands` and `point.balance` --------------------------------
commands = RabbitRouter()
point_commands = commands.subscriber(
    RabbitQueue(POINT_COMMANDS.routing_key, durable=True, declare=False),
    ack_policy=AckPolicy.NACK_ON_ERROR,
    no_reply=True,
    title="point.commands",
    description="GrantPoints: a manual adjustment, exactly one receiver.",
)
balance_requests = commands.subscriber(
    RabbitQueue(POINT_BALANCE.routing_key, durable=True, declare=False),
    # A request that cannot be answered is dropped: no dead-letter queue,
    # no retry (the caller has given up after its timeout).
    ack_policy=AckPolicy.REJECT_ON_ERROR,
    title="point.balance",
    description="GetPointBalance: request/reply (direct reply-to and correlation id).",
)


@point_commands
async def on_grant_points(body: GrantPoints, env: IncomingEnvelope, units: UnitsOfWork) -> None:
    if env.type != GrantPoints.TYPE:
        raise PoisonMessageError(f"point.commands takes {GrantPoints.TYPE}, not {env.type!r}")
    expect_version(env, GrantPoints)
    await handlers.grant_points(body, env, units(env.caused()))


@balance_requests
async def on_get_balance(
    body: GetPointBalance, message: RabbitDelivery, units: UnitsOfWork
) -> PointBalance:
    if not message.reply_to.startswith(DIRECT_REPLY_TO):
        raise PoisonMessageError(
            f"point.balance answers through direct reply-to only, not {message.reply_to!r}"
        )
    return await handlers.point_balance(body.customer_id, units(MessageContext("point.balance")))


def use_settings(settings: PointServiceSettings) -> None:
    """The subscriber options that come from settings, set before the brokers
    start: the Kafka consumer group and commit interval, and one channel with
    the prefetch for both RabbitMQ queues."""
    order_events.group_id = settings.consumer_group
    order_offsets.interval_s = settings.kafka_commit_interval_ms / 1000
    channel = Channel(prefetch_count=settings.rabbitmq_prefetch)
    point_commands.channel = channel
    balance_requests.channel = channel
