"""The outbox row's `headers` JSON, written by messaging.outbox.writer and read
by the relay (outbox_relay), without SQLAlchemy: the CloudEvents attributes,
the binary-mode headers computed from them for the row's broker, and the W3C
trace context of the request that wrote the row."""

from __future__ import annotations

from typing import TypedDict, cast

import orjson


class OutboxHeaders(TypedDict):
    ce: dict[str, str]
    """CloudEvents attributes by their spec names (id, type, source, time, ...)."""
    binary: dict[str, str]
    """The attributes as binary-mode headers: `ce_*` for Kafka, `ce-*` for AMQP."""
    trace: dict[str, str]
    """The trace context (traceparent, tracestate) to continue on publish."""


def parse_outbox_headers(text: str | bytes) -> OutboxHeaders:
    """The `headers` column as read back as text (`headers::text`)."""
    return cast(OutboxHeaders, orjson.loads(text))
