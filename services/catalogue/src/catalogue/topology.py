"""Every Kafka topic and RabbitMQ exchange and queue of the system, in one place,
and the idempotent provisioning of them (``provision-topology``).

The local stack runs provisioning after the brokers are ready; the Helm chart
runs the same command in its provisioning Job. Services never create topology on the fly
(Kafka's automatic topic creation is off), so a typo is an error, not a new
topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from messaging.connections import kafka_client_options, rabbitmq_ssl_context
from messaging.envelope import KafkaTopic, RabbitRoute
from messaging.provisioning import ProvisioningSettings, run_command, until_reachable
from messaging.settings import SETTINGS_CONFIG, KafkaSettings, RabbitMQSettings

log = logging.getLogger(__name__)

# -- Kafka: events ---------------------------------------------------------
ORDERS = KafkaTopic("orders")
POINTS = KafkaTopic("points")
POINT_SERVICE_GROUP = "point-service"
# Dead letters of a consumer group: <topic>.<group>.dlt
ORDERS_POINT_SERVICE_DLT = KafkaTopic(f"{ORDERS.topic}.{POINT_SERVICE_GROUP}.dlt")

# -- RabbitMQ: commands ----------------------------------------------------
COMMANDS_EXCHANGE = "commands"
DEAD_LETTER_EXCHANGE = "dead-letter"
NOTIFICATION_RETRY_EXCHANGE = "notification.retry"
NOTIFICATION_SEND = RabbitRoute(COMMANDS_EXCHANGE, "notification.send")
POINT_COMMANDS = RabbitRoute(COMMANDS_EXCHANGE, "point.commands")
POINT_BALANCE = RabbitRoute(COMMANDS_EXCHANGE, "point.balance")
NOTIFICATION_PARKING_LOT = "notification.send.parking-lot"
POINT_COMMANDS_DEAD_LETTER = "point.commands.dead-letter"
# Delayed retries of notification.send: wait in retry queue n for its TTL, then
# dead-letter back to the main queue. Growing delays, in seconds.
NOTIFICATION_RETRY_DELAYS_S = (1, 5, 25)


def notification_retry_queue(attempt: int) -> str:
    return f"notification.send.retry.{attempt}"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueSpec:
    name: str
    exchange: str
    routing_key: str
    arguments: dict[str, Any] = field(default_factory=dict)


TOPICS = (
    TopicSpec(ORDERS.topic, partitions=6),
    TopicSpec(POINTS.topic, partitions=6),
    TopicSpec(ORDERS_POINT_SERVICE_DLT.topic, partitions=1),
)

EXCHANGES = (COMMANDS_EXCHANGE, DEAD_LETTER_EXCHANGE, NOTIFICATION_RETRY_EXCHANGE)

# Classic queues: RabbitMQ 3.10 quorum queues do not support priorities.
CLASSIC = {"x-queue-type": "classic"}

QUEUES = (
    QueueSpec(
        NOTIFICATION_SEND.routing_key,
        COMMANDS_EXCHANGE,
        NOTIFICATION_SEND.routing_key,
        {**CLASSIC, "x-max-priority": 10},
    ),
    *(
        QueueSpec(
            notification_retry_queue(n),
            NOTIFICATION_RETRY_EXCHANGE,
            notification_retry_queue(n),
            {
                **CLASSIC,
                "x-message-ttl": delay * 1000,
                "x-dead-letter-exchange": COMMANDS_EXCHANGE,
                "x-dead-letter-routing-key": NOTIFICATION_SEND.routing_key,
            },
        )
        for n, delay in enumerate(NOTIFICATION_RETRY_DELAYS_S, start=1)
    ),
    QueueSpec(
        NOTIFICATION_PARKING_LOT, DEAD_LETTER_EXCHANGE, NOTIFICATION_SEND.routing_key, CLASSIC
    ),
    QueueSpec(POINT_COMMANDS.routing_key, COMMANDS_EXCHANGE, POINT_COMMANDS.routing_key, CLASSIC),
    QueueSpec(
        POINT_COMMANDS_DEAD_LETTER, DEAD_LETTER_EXCHANGE, POINT_COMMANDS.routing_key, CLASSIC
    ),
    # Requests carry their own expiration (the caller's timeout): a request
    # nobody answered in time is dropped, not answered late.
    QueueSpec(POINT_BALANCE.routing_key, COMMANDS_EXCHANGE, POINT_BALANCE.routing_key, CLASSIC),
)


class ProvisionSettings(KafkaSettings, RabbitMQSettings, ProvisioningSettings):
    model_config = SETTINGS_CONFIG

    kafka_replication_factor: int = 1


async def provision_kafka(
    settings: ProvisionSettings, topics: Sequence[TopicSpec] = TOPICS
) -> None:
    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        if missing:
            # Another provisioner may win the race; the topic exists either way.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            t.name,
                            num_partitions=t.partitions,
                            replication_factor=settings.kafka_replication_factor,
                            topic_configs=t.config,
                        )
                        for t in missing
                    ]
                )
        for t in missing:
            log.info("created topic %s (%d partitions)", t.name, t.partitions)
    finally:
        await admin.close()


async def provision_rabbitmq(
    settings: ProvisionSettings,
    exchanges: Sequence[str] = EXCHANGES,
    queues: Sequence[QueueSpec] = QUEUES,
) -> None:
    connection = await aio_pika.connect(
        settings.rabbitmq_url(), timeout=10, ssl_context=rabbitmq_ssl_context(settings)
    )
    async with connection:
        channel = await connection.channel()
        declared = {
            name: await channel.declare_exchange(name, aio_pika.ExchangeType.DIRECT, durable=True)
            for name in exchanges
        }
        for q in queues:
            queue = await channel.declare_queue(q.name, durable=True, arguments=q.arguments)
            await queue.bind(declared[q.exchange], routing_key=q.routing_key)


async def provision(settings: ProvisionSettings) -> None:
    """Both wait for their broker (messaging.provisioning), within
    PROVISION_TIMEOUT_S."""
    timeout = settings.provision_timeout_s
    await asyncio.gather(
        until_reachable("kafka", lambda: provision_kafka(settings), timeout),
        until_reachable("rabbitmq", lambda: provision_rabbitmq(settings), timeout),
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(
        "provision-topology", __doc__ or "", lambda: provision(ProvisionSettings()), argv
    )


if __name__ == "__main__":
    sys.exit(main())
