"""What every client needs to connect securely, translated once from the
settings groups (messaging.settings): TLS contexts, PostgreSQL's sslmode,
Kafka's security protocol and SASL login, AMQPS.

Every process builds its clients from these functions, so a FastStream broker
and a plain aiokafka, aio-pika or asyncpg client of the same process cannot
disagree. With the settings' defaults each returns what the clients were
given before the options existed (nothing, or None), so nothing changes.
"""

from __future__ import annotations

import ssl
from typing import Any, Literal

from faststream.kafka.security import parse_security as faststream_kafka_options
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from messaging.settings import (
    DatabaseSettings,
    KafkaSettings,
    PostgresSslMode,
    RabbitMQSettings,
)

# asyncpg's `ssl` argument: a context (TLS required, verified as the context
# says), False (no TLS) or a libpq mode it negotiates itself.
PostgresSsl = ssl.SSLContext | bool | Literal["allow", "prefer"]

SASL = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}


def tls_context(cafile: str) -> ssl.SSLContext:
    """A client context that verifies the server's chain and host name against
    `cafile`, or against the system trust store when it is empty."""
    return ssl.create_default_context(cafile=cafile or None)


def postgres_ssl(sslmode: PostgresSslMode, sslrootcert: str) -> PostgresSsl:
    """asyncpg's `ssl` argument for a libpq sslmode, with libpq's meaning."""
    if sslmode == "disable":
        return False
    if sslmode in ("allow", "prefer"):
        # Opportunistic and unverified: asyncpg's own negotiation, as when it
        # is given no `ssl` at all.
        return sslmode
    context = tls_context(sslrootcert)
    if sslmode == "verify-full":
        return context
    # verify-ca: the chain, not the host name. require: encryption only,
    # unless a CA file is given (then the chain too, as libpq does).
    context.check_hostname = False
    if sslmode == "require" and not sslrootcert:
        context.verify_mode = ssl.CERT_NONE
    return context


def database_ssl(settings: DatabaseSettings) -> PostgresSsl:
    return postgres_ssl(settings.database_sslmode, settings.database_sslrootcert)


def kafka_security(settings: KafkaSettings) -> BaseSecurity | None:
    """FastStream's security object for KafkaBroker(security=...); None for
    PLAINTEXT."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = tls_context(settings.kafka_ssl_cafile) if protocol.endswith("SSL") else None
    if not protocol.startswith("SASL_"):
        return BaseSecurity(ssl_context=context)
    login = SASL[settings.kafka_sasl_mechanism]
    return login(
        settings.kafka_sasl_username,
        settings.kafka_sasl_password.get_secret_value(),
        ssl_context=context,
        use_ssl=context is not None,
    )


def kafka_client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for aiokafka's producer, consumer and admin client:
    the same ones KafkaBroker derives from kafka_security()."""
    return {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        **faststream_kafka_options(kafka_security(settings)),
    }


def rabbitmq_ssl_context(settings: RabbitMQSettings) -> ssl.SSLContext | None:
    """aio-pika's `ssl_context` for rabbitmq_url(); None without TLS."""
    return tls_context(settings.rabbitmq_ssl_cafile) if settings.rabbitmq_tls else None


def rabbitmq_security(settings: RabbitMQSettings) -> BaseSecurity | None:
    """FastStream's security object for RabbitBroker(security=...); None without
    TLS (the credentials are in rabbitmq_url())."""
    context = rabbitmq_ssl_context(settings)
    return None if context is None else BaseSecurity(ssl_context=context)
