"""Building blocks of the per-process settings classes.

Each process (a service, a relay) has exactly one ``BaseSettings`` class, made
of these groups; the Helm chart and the local stack set exactly the variables
it reads. Variable names are the field names in upper case (no prefix), and
passwords are separate variables so that they can come from a Secret.

Every secure-connection option is off by default, so that a process given
none of them connects exactly as before. messaging.connections turns them
into each client's arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pydantic import (
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

SETTINGS_CONFIG = SettingsConfigDict(frozen=True, extra="ignore")

# libpq's sslmode values, with libpq's meaning.
PostgresSslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
# The modes that use a CA file: `require` verifies the chain only when one is
# given (as libpq does with a root certificate), the verify-* modes always.
POSTGRES_CA_MODES = ("require", "verify-ca", "verify-full")
KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
AMQPS_PORT = 5671


def variable(info: ValidationInfo) -> str:
    """The environment variable of the field being validated."""
    return (info.field_name or "").upper()


def existing_ca_file(value: str, info: ValidationInfo) -> str:
    """A CA bundle must be a readable file; empty means the system trust store."""
    if value and not Path(value).is_file():
        raise ValueError(f"{variable(info)}={value!r}: no such file (a PEM CA bundle)")
    return value


def postgres_ca_file(value: str, info: ValidationInfo, mode_field: str) -> str:
    existing_ca_file(value, info)
    mode = info.data.get(mode_field)
    if value and mode is not None and mode not in POSTGRES_CA_MODES:
        raise ValueError(
            f"{variable(info)} is set but {mode_field.upper()}={mode} never verifies the "
            f"server: use one of {', '.join(POSTGRES_CA_MODES)}"
        )
    return value


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
    # At most pool size + max overflow connections per process: the chart
    # sums them over every replica against PostgreSQL's max_connections.
    database_pool_size: int = Field(default=10, ge=1)
    database_max_overflow: int = Field(default=10, ge=0)
    # TLS, with libpq's modes. `prefer` is what asyncpg (and libpq) do when told
    # nothing: TLS if the server offers it, unverified, else plaintext. So the
    # default changes nothing on the wire; it protects against nothing either,
    # which is why a deployment that means it sets verify-full.
    database_sslmode: PostgresSslMode = "prefer"
    # PEM bundle of the CA that signs the server's certificate; empty: the
    # system trust store.
    database_sslrootcert: str = ""

    @field_validator("database_sslrootcert")
    @classmethod
    def _database_ca(cls, value: str, info: ValidationInfo) -> str:
        return postgres_ca_file(value, info, "database_sslmode")

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
    # SSL and SASL_SSL verify the brokers' certificates and host names against
    # KAFKA_SSL_CAFILE (empty: the system trust store); the SASL protocols log
    # in with KAFKA_SASL_MECHANISM as KAFKA_SASL_USERNAME.
    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: KafkaSaslMechanism = "PLAIN"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_ssl_cafile: str = ""

    @field_validator("kafka_sasl_username", "kafka_sasl_password")
    @classmethod
    def _sasl_credentials(cls, value: str | SecretStr, info: ValidationInfo) -> str | SecretStr:
        protocol = info.data.get("kafka_security_protocol")
        given = value.get_secret_value() if isinstance(value, SecretStr) else value
        if protocol is None:
            return value
        if protocol.startswith("SASL_") and not given:
            raise ValueError(
                f"{variable(info)} is required with KAFKA_SECURITY_PROTOCOL={protocol}"
            )
        if given and not protocol.startswith("SASL_"):
            raise ValueError(
                f"{variable(info)} is set but KAFKA_SECURITY_PROTOCOL={protocol} does not "
                "authenticate: use SASL_SSL (or SASL_PLAINTEXT)"
            )
        return value

    @field_validator("kafka_ssl_cafile")
    @classmethod
    def _kafka_ca(cls, value: str, info: ValidationInfo) -> str:
        existing_ca_file(value, info)
        protocol = info.data.get("kafka_security_protocol")
        if value and protocol is not None and not protocol.endswith("SSL"):
            raise ValueError(
                f"{variable(info)} is set but KAFKA_SECURITY_PROTOCOL={protocol} does not use "
                "TLS: use SSL or SASL_SSL"
            )
        return value


class RabbitMQSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    rabbitmq_host: str = "127.0.0.1"
    # 5671 (AMQPS) when RABBITMQ_TLS is on and no port is given.
    rabbitmq_port: int = 5672
    rabbitmq_vhost: str = "/"
    rabbitmq_user: str
    rabbitmq_password: SecretStr
    # amqps://, the server's certificate and host name verified against
    # RABBITMQ_SSL_CAFILE (empty: the system trust store).
    rabbitmq_tls: bool = False
    rabbitmq_ssl_cafile: str = ""

    @model_validator(mode="before")
    @classmethod
    def _amqps_port(cls, data: Any) -> Any:
        if isinstance(data, dict) and "rabbitmq_port" not in data:
            try:
                tls = TypeAdapter(bool).validate_python(data.get("rabbitmq_tls", False))
            except ValidationError:
                return data  # reported against rabbitmq_tls itself
            if tls:
                return {**data, "rabbitmq_port": AMQPS_PORT}
        return data

    @field_validator("rabbitmq_ssl_cafile")
    @classmethod
    def _rabbitmq_ca(cls, value: str, info: ValidationInfo) -> str:
        existing_ca_file(value, info)
        if value and info.data.get("rabbitmq_tls") is False:
            raise ValueError(f"{variable(info)} is set but RABBITMQ_TLS is off")
        return value

    def rabbitmq_url(self) -> str:
        user = quote(self.rabbitmq_user, safe="")
        password = quote(self.rabbitmq_password.get_secret_value(), safe="")
        vhost = quote(self.rabbitmq_vhost, safe="")
        scheme = "amqps" if self.rabbitmq_tls else "amqp"
        return f"{scheme}://{user}:{password}@{self.rabbitmq_host}:{self.rabbitmq_port}/{vhost}"


class RedisSettings(BaseSettings):
    """Where activity notices go (catalogue.contracts.activity): Redis pub/sub,
    best effort. An empty REDIS_HOST turns the feed off."""

    model_config = SETTINGS_CONFIG

    redis_host: str = ""
    redis_port: int = 6379
    redis_password: SecretStr = SecretStr("")
    # How long connecting to or publishing on Redis may take before the notice
    # is dropped (and counted): a slow or absent Redis never slows a business
    # change down by more than this.
    redis_timeout_ms: int = Field(default=200, ge=1)


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
    # A larger request body is answered 413 before it is read (an order of
    # 100 lines is about 20 KB).
    http_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
