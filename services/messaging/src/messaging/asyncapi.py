"""AsyncAPI documents: FastStream generates them from the subscribers' typed
handlers; what a service sends through its outbox is declared here as
documentation-only publishers (the relay, not FastStream, publishes it)."""

from __future__ import annotations

import json
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.rabbit import RabbitBroker, RabbitExchange, RabbitQueue
from faststream.specification import AsyncAPI

from messaging.envelope import Contract, KafkaTopic, RabbitRoute

VIA_OUTBOX = (
    "Written to the service's transactional outbox in the same transaction as the "
    "change, and published by its outbox relay sidecar. CloudEvents binary mode: "
    "attributes in headers (`ce_*` on Kafka, `ce-*` on AMQP), JSON body."
)


def document_outbox(
    broker: KafkaBroker | RabbitBroker,
    destination: KafkaTopic | RabbitRoute,
    contract: type[Contract],
) -> None:
    title = f"{destination.name}:{contract.TYPE}"
    description = f"{contract.__doc__ or contract.TYPE}\n\n{VIA_OUTBOX}"
    if isinstance(destination, KafkaTopic):
        assert isinstance(broker, KafkaBroker)
        broker.publisher(destination.topic, title=title, description=description, schema=contract)
    else:
        assert isinstance(broker, RabbitBroker)
        broker.publisher(
            RabbitQueue(destination.routing_key, declare=False),
            exchange=RabbitExchange(destination.exchange, declare=False),
            routing_key=destination.routing_key,
            title=title,
            description=description,
            schema=contract,
        )


def placeholder_settings() -> dict[str, Any]:
    """Values for generating documents without a deployment behind them."""
    return {
        "database_name": "docs",
        "database_user": "docs",
        "database_password": "docs",
        "rabbitmq_user": "docs",
        "rabbitmq_password": "docs",
        "otel_service_name": "docs",
    }


def render(specification: AsyncAPI) -> str:
    """The document as stable, reviewable JSON. Keys are sorted: FastStream's order of
    channels and schemas follows registration internals that differ between
    machines, and a committed document must not."""
    document = specification.to_specification().to_jsonable()
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
