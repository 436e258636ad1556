"""The one settings class of the point-service process."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from catalogue.topology import POINT_SERVICE_GROUP
from messaging.inbox.retention import InboxRetentionSettings
from messaging.settings import (
    DatabaseSettings,
    HttpSettings,
    KafkaSettings,
    RabbitMQSettings,
    RedisSettings,
    TelemetrySettings,
)
from messaging.startup import StartupSettings


class PointServiceSettings(
    DatabaseSettings,
    KafkaSettings,
    RabbitMQSettings,
    RedisSettings,
    TelemetrySettings,
    HttpSettings,
    StartupSettings,
    InboxRetentionSettings,
):
    # The earning rule: points per whole unit of an order's total (rounded down).
    points_per_currency_unit: Decimal = Field(default=Decimal(1), ge=0)
    consumer_group: str = POINT_SERVICE_GROUP
    # How often the offsets of handled Kafka records are committed
    # (messaging.offsets); 0 commits after every record.
    kafka_commit_interval_ms: int = Field(default=200, ge=0, le=60_000)
    # Unacknowledged RabbitMQ deliveries per consumer (backpressure).
    rabbitmq_prefetch: int = Field(default=20, ge=1)
    # Attempts of a failing (non-transient) message before it is dead-lettered.
    consumer_max_attempts: int = Field(default=5, ge=1)
