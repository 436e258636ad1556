"""Building blocks of the per-process settings classes.

Each process (a service, a relay) has exactly one ``BaseSettings`` class, made
of these groups; the Helm chart and the local stack set exactly the variables
it reads. Variable names are the field names in upper case (no prefix), and
passwords are separate variables so that they can come from a Secret.
"""

from __future__ import annotations

from urllib.parse import quote

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SETTINGS_CONFIG = SettingsConfigDict(frozen=True, extra="ignore")


class DatabaseSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    database_host: str = "127.0.0.1"
    database_port: int = 5432
    database_name: str
    database_user: str
    database_password: SecretStr
    # A down database must fail a request fast, not hang it.
    database_connect_timeout_s: float = Field(default=3.0, gt=0)
    database_statement_timeout_s: float = Field(default=10.0, gt=0)
    database_pool_size: int = Field(default=10, ge=1)

    def database_dsn(self, driver: str = "postgresql") -> str:
        user = quote(self.database_user, safe="")
        password = quote(self.database_password.get_secret_value(), safe="")
        return (
            f"{driver}://{user}:{password}@{self.database_host}:{self.database_port}/"
            f"{self.database_name}"
        )


class KafkaSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    kafka_bootstrap_servers: str = "127.0.0.1:9092"


class RabbitMQSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    rabbitmq_host: str = "127.0.0.1"
    rabbitmq_port: int = 5672
    rabbitmq_vhost: str = "/"
    rabbitmq_user: str
    rabbitmq_password: SecretStr

    def rabbitmq_url(self) -> str:
        user = quote(self.rabbitmq_user, safe="")
        password = quote(self.rabbitmq_password.get_secret_value(), safe="")
        vhost = quote(self.rabbitmq_vhost, safe="")
        return f"amqp://{user}:{password}@{self.rabbitmq_host}:{self.rabbitmq_port}/{vhost}"


class TelemetrySettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    otel_service_name: str
    # OTLP/gRPC endpoint of the tracing backend; empty disables trace export.
    otel_exporter_otlp_endpoint: str = ""
    log_level: str = "INFO"


class HttpSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    # The process's HTTP port: API (services), health and /metrics (all).
    http_host: str = "0.0.0.0"  # noqa: S104 - containers listen on all interfaces
    http_port: int = 8080
