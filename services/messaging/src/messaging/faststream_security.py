"""FastStream's security objects for KafkaBroker and RabbitBroker(security=...),
built from the options messaging.connections gives the plain clients, so that
a broker and a plain aiokafka or aio-pika client of the same process cannot
disagree. None with the settings' defaults (plaintext), as before the options
existed.

Apart from messaging.connections so that the outbox relay, which uses only the
plain clients, runs without FastStream installed.
"""

from __future__ import annotations

from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from messaging.connections import kafka_client_options, rabbitmq_ssl_context
from messaging.settings import KafkaSettings, RabbitMQSettings

SASL = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}


def kafka_security(settings: KafkaSettings) -> BaseSecurity | None:
    """FastStream's security object for KafkaBroker(security=...); None for
    PLAINTEXT. KafkaBroker turns it back into kafka_client_options()."""
    options = kafka_client_options(settings)
    if "security_protocol" not in options:
        return None
    context = options["ssl_context"]
    if "sasl_mechanism" not in options:
        return BaseSecurity(ssl_context=context)
    login = SASL[options["sasl_mechanism"]]
    return login(
        options["sasl_plain_username"],
        options["sasl_plain_password"],
        ssl_context=context,
        use_ssl=context is not None,
    )


def rabbitmq_security(settings: RabbitMQSettings) -> BaseSecurity | None:
    """FastStream's security object for RabbitBroker(security=...); None without
    TLS (the credentials are in rabbitmq_url())."""
    context = rabbitmq_ssl_context(settings)
    return None if context is None else BaseSecurity(ssl_context=context)
