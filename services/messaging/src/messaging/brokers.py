"""What every service's broker factory does alike, whatever its topics.

- `observed`: a broker's logging, tracing and metrics, its outermost
  middlewares, so that retries and dead letters (the innermost middleware,
  messaging.consumer.DeadLetterPolicy) happen inside the message's span.
- `provide`: the process's objects (settings, database sessions, a mailer)
  put into a broker's context, where the doors take them as parameters
  annotated with `Context(name)`; tests override the dependency that reads
  them (`broker.provider.override`) instead of building a process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.rabbit import RabbitBroker
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY


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
