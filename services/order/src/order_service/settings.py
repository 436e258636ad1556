"""The one settings class of the order-service process."""

from __future__ import annotations

from pydantic import Field

from messaging.settings import DatabaseSettings, HttpSettings, RabbitMQSettings, TelemetrySettings
from messaging.startup import StartupSettings


class OrderServiceSettings(
    DatabaseSettings, RabbitMQSettings, TelemetrySettings, HttpSettings, StartupSettings
):
    # The database must answer within this, or the request gets a 503.
    database_connect_timeout_s: float = Field(default=2.0, gt=0)
    # How long GET /customers/{id}/summary waits for point-service's answer
    # before it answers without the balance.
    points_request_timeout_s: float = Field(default=0.3, gt=0, le=5)
