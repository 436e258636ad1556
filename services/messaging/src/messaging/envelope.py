"""The envelope every message travels in.

A message is a CloudEvent (binary content mode): the attributes go in Kafka
headers / AMQP headers, the JSON body is the contract's data. Every message
carries id, type, source, time, subject (the aggregate id), schema version,
correlation id, causation id and the W3C trace context of the work that
produced it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.bindings import rabbitmq as ce_rabbitmq
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from opentelemetry import propagate
from pydantic import BaseModel, ConfigDict

# CloudEvents extension attribute names (lowercase letters and digits only).
SCHEMA_VERSION = "schemaversion"
CORRELATION_ID = "correlationid"
CAUSATION_ID = "causationid"
# W3C trace context travels in its own headers, as OpenTelemetry propagators expect.
TRACE_HEADERS = ("traceparent", "tracestate")
_JSON = JSONFormat()

E = TypeVar("E")


@dataclass(frozen=True)
class KafkaTopic:
    """An event stream: many readers, replayable, ordered per key."""

    topic: str

    kind: ClassVar[str] = "kafka"

    @property
    def name(self) -> str:
        return self.topic


@dataclass(frozen=True)
class RabbitRoute:
    """A command route: an exchange and a routing key leading to one queue."""

    exchange: str
    routing_key: str

    kind: ClassVar[str] = "rabbitmq"

    @property
    def name(self) -> str:
        return self.exchange


Destination = KafkaTopic | RabbitRoute


class Contract(BaseModel):
    """The data of one message type at one schema version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int] = 1


@dataclass(frozen=True)
class MessageContext:
    """Where a message comes from: the correlation id of the whole flow and the
    id of the request or message that caused it."""

    correlation_id: str
    causation_id: str | None = None


@dataclass(frozen=True)
class OutgoingMessage:
    """A message a service decided to send; the unit of work writes it to the
    outbox with the business change, and the relay publishes it later."""

    data: Contract
    destination: Destination
    subject: str
    source: str
    context: MessageContext
    ordering_key: str | None = None
    priority: int | None = None
    best_effort: bool = False
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    # Captured when the message is created, i.e. inside the request's span.
    trace_headers: Mapping[str, str] = field(default_factory=lambda: current_trace_headers())

    @property
    def type(self) -> str:
        return self.data.TYPE

    def binary_mode_headers(self) -> dict[str, str]:
        """The broker headers of CloudEvents binary content mode for this message's
        destination, computed once when the message is written, so that the relay
        only copies them."""
        return binary_mode_headers(self.cloudevent_attributes(), self.destination.kind)

    def cloudevent_attributes(self) -> dict[str, str]:
        attributes = {
            "specversion": "1.0",
            "id": str(self.id),
            "type": self.data.TYPE,
            "source": self.source,
            "subject": self.subject,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            SCHEMA_VERSION: str(self.data.SCHEMA_VERSION),
            CORRELATION_ID: self.context.correlation_id,
        }
        if self.context.causation_id:
            attributes[CAUSATION_ID] = self.context.causation_id
        return attributes


class Aggregate(Protocol, Generic[E]):
    """What records domain events: those not yet sent, oldest first."""

    events: list[E]


def collect_event_messages(
    aggregates: Iterable[Aggregate[E]],
    messages_of: Callable[[E, MessageContext], list[OutgoingMessage]],
    context: MessageContext,
) -> list[OutgoingMessage]:
    """The messages (`messages_of` each event) of the aggregates' new events, in
    the order they happened; each event is taken off its aggregate, so it is
    sent once."""
    messages: list[OutgoingMessage] = []
    for aggregate in aggregates:
        while aggregate.events:
            messages += messages_of(aggregate.events.pop(0), context)
    return messages


def binary_mode_headers(attributes: Mapping[str, str], destination_kind: str) -> dict[str, str]:
    """CloudEvents binary content mode (the cloudevents SDK's bindings): Kafka
    ``ce_*`` headers plus ``content-type``; RabbitMQ ``ce-*`` headers (its
    content type is an AMQP property)."""
    values: dict[str, Any] = dict(attributes)
    values["time"] = datetime.fromisoformat(values["time"])
    event = CloudEvent(values, None)
    if destination_kind == KafkaTopic.kind:
        record = ce_kafka.to_binary(event, _JSON)
        return {k: v.decode() for k, v in record.headers.items()}
    return ce_rabbitmq.to_binary(event, _JSON).headers


def current_trace_headers() -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {k: v for k, v in carrier.items() if k in TRACE_HEADERS}


def json_ready(data: Contract) -> dict[str, Any]:
    return data.model_dump(mode="json")
