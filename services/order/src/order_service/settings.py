"""The one settings class of the order-service process."""

from __future__ import annotations

from pydantic import Field

from messaging.settings import (
    DatabaseSettings,
    HttpSettings,
    RabbitMQSettings,
    RedisSettings,
    TelemetrySettings,
)
from messaging.startup import StartupSettings


class OrderServiceSettings(
    DatabaseSettings,
    RabbitMQSettings,
    RedisSettings,
    TelemetrySettings,
    HttpSettings,
    StartupSettings,
):
    # The database must answer within this, or the request gets a 503.
    database_connect_timeout_s: float = Field(default=2.0, gt=0)
    # How long GET /customers/{id}/summary waits for point-service's answer
    # before it answers without the balance.
    points_request_timeout_s: float = Field(default=0.3, gt=0, le=5)
    # An Idempotency-Key is remembered this long after its first request; a
    # retry with the same key after that places a second order.
    idempotency_key_retention_hours: float = Field(default=24, gt=0)
    # Expired keys are deleted at start and then every interval, in batches.
    idempotency_key_purge_interval_s: float = Field(default=300, gt=0)
    idempotency_key_purge_batch_size: int = Field(default=1000, ge=1, le=100_000)
