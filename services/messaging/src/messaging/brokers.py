"""What every service's broker factory does alike, whatever its topics.

- `rabbit_broker`, `kafka_broker`: a broker connected and secured as the
  settings say, with the tolerant parser (messaging.consumer) and `observed`.
- `observed`: a broker's logging, tracing and metrics, its outermost
  middlewares, so that retries and dead letters (the innermost middleware,
  messaging.consumer.DeadLetterPolicy) happen inside the message's span.
- `provide`: the process's objects (settings, database sessions, a mailer)
  put into a broker's context, where the doors take them as parameters
  annotated with `InContext(name)` (messaging.context); tests override the
  dependency that reads them (`broker.provider.override`) instead of building
  a process. The process's settings, database sessions and activity feed are
  under SETTINGS, SESSIONS and ACTIVITY; `Sessions` and `Activity` are the
  parameter types of the sessions and the feed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.rabbit import RabbitBroker
from faststream.rabbit.opentelemetry import RabbitTelemetryMiddleware
from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from messaging.activity import ActivityPublisher
from messaging.consumer import parse_kafka_record, parse_rabbit_message
from messaging.context import InContext
from messaging.faststream_security import kafka_security, rabbitmq_security
from messaging.settings import KafkaSettings, RabbitMQSettings

# Context names are paths (FastStream reads "a.b" as attribute b of a): no dots.
SETTINGS = "settings"
SESSIONS = "sessions"
ACTIVITY = "activity"

Sessions = Annotated[async_sessionmaker[AsyncSession], InContext(SESSIONS)]
Activity = Annotated[ActivityPublisher, InContext(ACTIVITY)]


def rabbit_broker(
    settings: RabbitMQSettings,
    service_name: str,
    logger: logging.Logger,
    tracer_provider: TracerProvider,
) -> RabbitBroker:
    """A RabbitMQ broker of the service: its connection, security and parser,
    observed."""
    return RabbitBroker(
        settings.rabbitmq_url(),
        security=rabbitmq_security(settings),
        parser=parse_rabbit_message,
        **observed(
            logger,
            service_name,
            tracer_provider,
            RabbitTelemetryMiddleware,
            RabbitPrometheusMiddleware,
        ),
    )


def kafka_broker(
    settings: KafkaSettings,
    service_name: str,
    logger: logging.Logger,
    tracer_provider: TracerProvider,
) -> KafkaBroker:
    """A Kafka broker of the service: its connection, security and parser,
    idempotent producing acknowledged by every in-sync replica, observed."""
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        security=kafka_security(settings),
        acks="all",
        enable_idempotence=True,
        parser=parse_kafka_record,
        **observed(
            logger,
            service_name,
            tracer_provider,
            KafkaTelemetryMiddleware,
            KafkaPrometheusMiddleware,
        ),
    )


def observed(
    logger: logging.Logger,
    service_name: str,
    tracer_provider: TracerProvider,
    telemetry: Callable[..., Any],
    prometheus: Callable[..., Any],
) -> dict[str, Any]:
    """Keyword arguments of a broker: per-message access lines at DEBUG
    through the process's JSON logging, FastStream's OpenTelemetry and
    Prometheus middlewares (e.g. RabbitTelemetryMiddleware,
    RabbitPrometheusMiddleware)."""
    return {
        "logger": logger,
        "log_level": logging.DEBUG,
        "middlewares": [
            telemetry(tracer_provider=tracer_provider),
            prometheus(registry=REGISTRY, app_name=service_name),
        ],
    }


def provide(broker: KafkaBroker | RabbitBroker, **objects: object) -> None:
    """Each object under its name in the broker's context. FastStream reads a
    dotted context name as an attribute path: names have no dots."""
    for name, value in objects.items():
        broker.context.set_global(name, value)
