"""The one settings class of the order-service process."""

from __future__ import annotations

from pydantic import Field

from messaging.settings import DatabaseSettings, HttpSettings, TelemetrySettings


class OrderServiceSettings(DatabaseSettings, TelemetrySettings, HttpSettings):
    # The database must answer within this, or the request gets a 503.
    database_connect_timeout_s: float = Field(default=2.0, gt=0)
