"""The point service's message doors (FastStream), thin: parse, call a handler.

The process: the brokers (entrypoints/brokers.py, with the routers of
entrypoints/consumers.py), health and metrics routes, the read API
(entrypoints/http.py), the consumer-lag reporter, the inbox retention, the
activity feed (messaging.activity), and the AsyncAPI document, in an app that
starts its brokers once the topics and queues they consume exist.
"""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient
from faststream.asgi import AsgiFastStream
from faststream.specification import AsyncAPI
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.ext.asyncio import async_sessionmaker

from catalogue.contracts.activity import ActivityKind, channel
from catalogue.topology import ORDERS, POINT_BALANCE, POINT_COMMANDS
from messaging.activity import activity_feed
from messaging.connections import kafka_client_options, rabbitmq_ssl_context
from messaging.database import build_engine
from messaging.health import database_check, health_routes
from messaging.inbox.retention import inbox_retention
from messaging.startup import (
    Check,
    ProvisionedFastStream,
    kafka_topics_exist,
    rabbit_queues_exist,
)
from point_service.adapters.orm import inbox
from point_service.entrypoints import consumers
from point_service.entrypoints.brokers import LOGGER, build_brokers
from point_service.entrypoints.http import read_routes
from point_service.entrypoints.lag import LagReporter
from point_service.service_layer.messages import SOURCE
from point_service.service_layer.unit_of_work import UnitOfWork
from point_service.settings import PointServiceSettings


def create_app(settings: PointServiceSettings, tracer_provider: TracerProvider) -> AsgiFastStream:
    engine = build_engine(settings, settings.otel_service_name)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    activity = activity_feed(settings, channel(SOURCE), ActivityKind)
    kafka, rabbit = build_brokers(settings, tracer_provider, sessions, activity)
    lag = LagReporter(consumers.order_events, settings.consumer_group)
    retention = inbox_retention(sessions, inbox, settings)

    async def dispose() -> None:
        await lag.stop()
        await activity.close()
        await engine.dispose()

    return ProvisionedFastStream(
        kafka,
        rabbit,
        topology=topology_checks(settings),
        startup_timeout_s=settings.startup_timeout_s,
        logger=LOGGER,
        asgi_routes=[
            *health_routes(
                [database_check(sessions), lambda: kafka.ping(2), lambda: rabbit.ping(2)]
            ),
            *read_routes(lambda context: UnitOfWork(sessions, context)),
        ],
        asyncapi_path="/asyncapi",
        on_startup=[activity.start],
        after_startup=[lag.start, retention.start],
        on_shutdown=[retention.stop, consumers.order_offsets.close],
        after_shutdown=[dispose],
        specification=AsyncAPI(
            kafka,
            rabbit,
            title="point-service",
            version="1",
            description=__doc__.split("\n\n")[0] if __doc__ else None,
        ),
    )


def topology_checks(settings: PointServiceSettings) -> list[tuple[str, Check]]:
    """What must exist before the brokers start: the topic and the queues consumed."""

    def kafka_admin() -> AIOKafkaAdminClient:
        return AIOKafkaAdminClient(**kafka_client_options(settings))

    queues = [POINT_COMMANDS.routing_key, POINT_BALANCE.routing_key]
    return [
        ("kafka topic " + ORDERS.topic, kafka_topics_exist(kafka_admin, [ORDERS.topic])),
        (
            "rabbitmq queues",
            rabbit_queues_exist(
                settings.rabbitmq_url(), queues, ssl_context=rabbitmq_ssl_context(settings)
            ),
        ),
    ]
