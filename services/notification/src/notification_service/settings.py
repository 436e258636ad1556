"""The one settings class of the notification-service process."""

from __future__ import annotations

from pydantic import Field

from messaging.settings import DatabaseSettings, HttpSettings, RabbitMQSettings, TelemetrySettings
from messaging.startup import StartupSettings


class NotificationServiceSettings(
    DatabaseSettings, RabbitMQSettings, TelemetrySettings, HttpSettings, StartupSettings
):
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_timeout_s: float = Field(default=10.0, gt=0)
    smtp_sender: str = "shop@example.com"
    # Blocking SMTP sends run on this many threads, off the event loop.
    smtp_workers: int = Field(default=4, ge=1)
    # Unacknowledged deliveries per consumer: backpressure on a slow mail server.
    rabbitmq_prefetch: int = Field(default=10, ge=1)
    inbox_retention_days: float = Field(default=14, gt=0)
