"""The one settings class of the outbox relay process."""

from __future__ import annotations

from pydantic import Field, field_validator

from messaging.outbox.names import checked_table_name
from messaging.settings import (
    DatabaseSettings,
    HttpSettings,
    KafkaSettings,
    RabbitMQSettings,
    TelemetrySettings,
)


class RelaySettings(
    DatabaseSettings, KafkaSettings, RabbitMQSettings, TelemetrySettings, HttpSettings
):
    # Which service's outbox this relay drains: the relay is generic.
    outbox_table: str = "outbox"

    relay_batch_size: int = Field(default=1000, ge=1, le=10_000)
    # Batches in flight at once (each in its own transaction and connection).
    relay_concurrency: int = Field(default=2, ge=1, le=16)
    # Fallback when a NOTIFY is missed (e.g. while the listening connection reconnects).
    relay_poll_interval_s: float = Field(default=1.0, gt=0)
    relay_publish_timeout_s: float = Field(default=10.0, gt=0)
    relay_kafka_linger_ms: int = Field(default=2, ge=0)

    # Producer-side loss strategies: retry with backoff, then the failure log ...
    relay_max_attempts: int = Field(default=10, ge=1)
    relay_backoff_base_s: float = Field(default=0.5, gt=0)
    relay_backoff_max_s: float = Field(default=60.0, gt=0)
    # ... or, for messages marked best effort, a short retry and then drop.
    relay_best_effort_max_attempts: int = Field(default=2, ge=1)

    # Sent and dropped rows are deleted after this long.
    relay_retention_s: float = Field(default=3600.0, ge=0)
    relay_stats_interval_s: float = Field(default=5.0, gt=0)

    @field_validator("outbox_table")
    @classmethod
    def _plain_identifier(cls, value: str) -> str:
        return checked_table_name(value)
