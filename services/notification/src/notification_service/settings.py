"""The one settings class of the notification-service process."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from messaging.inbox.retention import InboxRetentionSettings
from messaging.settings import (
    DatabaseSettings,
    HttpSettings,
    RabbitMQSettings,
    RedisSettings,
    TelemetrySettings,
    existing_ca_file,
    variable,
)
from messaging.startup import StartupSettings

SmtpSecurityMode = Literal["none", "starttls", "tls"]


class NotificationServiceSettings(
    DatabaseSettings,
    RabbitMQSettings,
    RedisSettings,
    TelemetrySettings,
    HttpSettings,
    StartupSettings,
    InboxRetentionSettings,
):
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_timeout_s: float = Field(default=10.0, gt=0)
    smtp_sender: str = "shop@example.com"
    # none: plaintext (as before). starttls: upgrade after EHLO, required: a
    # server that does not offer it gets nothing. tls: implicit TLS (SMTPS,
    # port 465). Both verify the server against SMTP_SSL_CAFILE (empty: the
    # system trust store).
    smtp_security: SmtpSecurityMode = "none"
    # AUTH only when a username is given, and only over TLS.
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_ssl_cafile: str = ""
    # Blocking SMTP sends run on this many threads, off the event loop.
    smtp_workers: int = Field(default=4, ge=1)
    # Unacknowledged deliveries per consumer: backpressure on a slow mail server.
    rabbitmq_prefetch: int = Field(default=10, ge=1)
    # The delivery history (deliveries) is kept this long, and a command
    # already delivered within it is a duplicate even after its inbox row is
    # gone: longer than INBOX_RETENTION_DAYS.
    delivery_history_retention_days: float = Field(default=90, gt=0)

    @model_validator(mode="after")
    def _history_outlives_the_inbox(self) -> NotificationServiceSettings:
        if self.delivery_history_retention_days < self.inbox_retention_days:
            raise ValueError(
                "DELIVERY_HISTORY_RETENTION_DAYS must be at least INBOX_RETENTION_DAYS"
            )
        return self

    @field_validator("smtp_username")
    @classmethod
    def _login_over_tls(cls, value: str, info: ValidationInfo) -> str:
        security = info.data.get("smtp_security")
        if value and security == "none":
            raise ValueError(
                f"{variable(info)} is set but SMTP_SECURITY=none would send the password in "
                "clear: use starttls or tls"
            )
        return value

    @field_validator("smtp_password")
    @classmethod
    def _password_with_username(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        if "smtp_username" not in info.data:
            return value
        username = info.data["smtp_username"]
        if username and not value.get_secret_value():
            raise ValueError(f"{variable(info)} is required with SMTP_USERNAME")
        if value.get_secret_value() and not username:
            raise ValueError(f"{variable(info)} is set but SMTP_USERNAME is empty")
        return value

    @field_validator("smtp_ssl_cafile")
    @classmethod
    def _smtp_ca(cls, value: str, info: ValidationInfo) -> str:
        existing_ca_file(value, info)
        if value and info.data.get("smtp_security") == "none":
            raise ValueError(f"{variable(info)} is set but SMTP_SECURITY=none")
        return value
