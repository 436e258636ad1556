"""What every client needs to connect securely, translated once from the
settings groups (messaging.settings): TLS contexts, PostgreSQL's sslmode,
Kafka's security protocol and SASL login, AMQPS.

Every process builds its clients from these functions: the plain aiokafka,
aio-pika and asyncpg clients directly, a FastStream broker through
messaging.faststream_security, which builds its security objects from the
same options, so the two kinds of client of one process cannot disagree.
With the settings' defaults each returns what the clients were given before
the options existed (nothing, or None), so nothing changes.

No FastStream here: the outbox relay uses these and runs without it.
"""

from __future__ import annotations

import ssl
from typing import Any, Literal

from messaging.settings import (
    DatabaseSettings,
    KafkaSettings,
    PostgresSslMode,
    RabbitMQSettings,
)

# asyncpg's `ssl` argument: a context (TLS required, verified as the context
# says), False (no TLS) or a libpq mode it negotiates itself.
PostgresSsl = ssl.SSLContext | bool | Literal["allow", "prefer"]


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


def kafka_client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for aiokafka's producer, consumer and admin client:
    only the bootstrap servers for PLAINTEXT; the security protocol and its
    TLS context (None without TLS) otherwise; and the SASL login for the
    SASL_ protocols."""
    options: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap_servers}
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return options
    context = tls_context(settings.kafka_ssl_cafile) if protocol.endswith("SSL") else None
    options.update(security_protocol=protocol, ssl_context=context)
    if protocol.startswith("SASL_"):
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value(),
        )
    return options


def rabbitmq_ssl_context(settings: RabbitMQSettings) -> ssl.SSLContext | None:
    """aio-pika's `ssl_context` for rabbitmq_url(); None without TLS."""
    return tls_context(settings.rabbitmq_ssl_cafile) if settings.rabbitmq_tls else None
