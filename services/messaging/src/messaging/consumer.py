"""The consuming side of the envelope, and what a consumer does when a message
cannot be processed.

- ``Envelope``: the CloudEvents attributes of an incoming message (Kafka
  ``ce_*`` or AMQP ``ce-*`` headers), validated; a handler gets it through
  ``Depends(envelope)``.
- ``DeadLetterPolicy``: a FastStream middleware. A poison message (undecodable,
  schema-invalid, unknown type) goes to the dead-letter destination at once
  with the reason; a transient failure (the database is down) is retried in
  place with capped exponential backoff, so the partition or queue keeps its
  order and nothing spins; any other failure is retried a few times and then
  dead-lettered. Either way the consumer moves on.
- ``parse_kafka_record``, ``parse_rabbit_message``: the brokers' parsers,
  tolerant of headers that are not text, so that every message reaches the
  policy: what FastStream does before it (parsing, the tracing middleware)
  must not fail on a message's content, or the message is redelivered for
  ever or skipped without a trace.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import pydantic
from faststream import BaseMiddleware, Depends, StreamMessage
from faststream._internal.basic_types import AsyncFuncAny
from faststream._internal.context.repository import ContextRepo
from prometheus_client import Counter

from messaging.backoff import full_jitter
from messaging.context import InContext
from messaging.envelope import (
    CAUSATION_ID,
    CORRELATION_ID,
    SCHEMA_VERSION,
    Contract,
    MessageContext,
)

if TYPE_CHECKING:
    from aio_pika import IncomingMessage
    from aiokafka import ConsumerRecord

log = logging.getLogger(__name__)

DEAD_LETTERED = Counter(
    "messaging_dead_lettered_total",
    "Messages sent to a dead-letter destination, by source and reason class.",
    ["source", "reason"],
)
RETRIED = Counter(
    "messaging_handler_retries_total",
    "In-place retries of a message handler, by source and kind (transient, failure).",
    ["source", "kind"],
)
DUPLICATES = Counter(
    "messaging_duplicates_skipped_total",
    "Redelivered messages found in the inbox and skipped.",
    ["consumer"],
)

REQUIRED = ("id", "type", "source", "specversion")


class PoisonMessageError(Exception):
    """The message can never be processed as it is (its reason goes to the
    dead-letter destination)."""


@dataclass(frozen=True)
class Envelope:
    id: uuid.UUID
    type: str
    source: str
    subject: str | None
    time: datetime | None
    schema_version: int
    correlation_id: str
    causation_id: str | None
    headers: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_headers(cls, headers: Mapping[str, Any]) -> Envelope:
        attributes: dict[str, str] = {}
        for name, value in headers.items():
            lower = name.lower()
            if lower.startswith(("ce_", "ce-")):
                attributes[lower[3:]] = _text(name, value)
        missing = [a for a in REQUIRED if not attributes.get(a)]
        if missing:
            raise PoisonMessageError(f"not a CloudEvent: missing {', '.join(missing)}")
        if attributes["specversion"] != "1.0":
            raise PoisonMessageError(
                f"unsupported CloudEvents specversion {attributes['specversion']}"
            )
        try:
            message_id = uuid.UUID(attributes["id"])
            schema_version = int(attributes.get(SCHEMA_VERSION, "1"))
            time = datetime.fromisoformat(attributes["time"]) if "time" in attributes else None
        except ValueError as exc:
            raise PoisonMessageError(f"invalid CloudEvents attribute: {exc}") from exc
        return cls(
            id=message_id,
            type=attributes["type"],
            source=attributes["source"],
            subject=attributes.get("subject"),
            time=time,
            schema_version=schema_version,
            correlation_id=attributes.get(CORRELATION_ID) or str(message_id),
            causation_id=attributes.get(CAUSATION_ID),
            headers=headers,
        )

    def caused(self) -> MessageContext:
        """The context of messages sent because of this one: same correlation id,
        this message as the cause."""
        return MessageContext(self.correlation_id, causation_id=str(self.id))


def _text(name: str, value: Any) -> str:
    if isinstance(value, bytes):  # an AMQP long string that is not UTF-8
        try:
            return value.decode()
        except UnicodeDecodeError as exc:
            raise PoisonMessageError(f"CloudEvents attribute {name} is not UTF-8") from exc
    return str(value)


def expect_version(env: Envelope, contract: type[Contract]) -> None:
    """Poison unless the message is at the schema version this consumer reads."""
    if env.schema_version != contract.SCHEMA_VERSION:
        raise PoisonMessageError(
            f"{env.type} schema version {env.schema_version} is not supported "
            f"(this consumer reads {contract.SCHEMA_VERSION})"
        )


async def envelope(message: StreamMessage[Any] = InContext("message")) -> Envelope:  # noqa: B008
    """FastStream dependency: the validated envelope of the message being handled.

    A coroutine function, as every dependency of a door is: FastStream's and
    FastAPI's dependency injection runs a plain function in a worker thread
    (anyio.to_thread) for each message or request, a thread hand-off per call
    (bench/README.md, issue 14)."""
    return Envelope.from_headers(message.headers)


# The parameter type of a door's envelope.
IncomingEnvelope = Annotated[Envelope, Depends(envelope)]


def has_type(*types: str) -> Callable[[StreamMessage[Any]], Awaitable[bool]]:
    """A FastStream subscriber filter choosing a handler by CloudEvents type."""

    async def matches(message: StreamMessage[Any]) -> bool:
        value = message.headers.get("ce_type") or message.headers.get("ce-type")
        return value in types

    return matches


DeadLetterSink = Callable[[StreamMessage[Any], str, str], Awaitable[None]]

# A message that cannot be read as the contract: not a CloudEvent, a body that
# is not JSON or not text (UnicodeDecodeError: a text content type over bytes
# that are not UTF-8), or not the contract's shape.
UNREADABLE: tuple[type[BaseException], ...] = (
    PoisonMessageError,
    pydantic.ValidationError,
    json.JSONDecodeError,
    UnicodeDecodeError,
)


@dataclass
class DeadLetterPolicy:
    """Configuration of the dead-letter middleware of one broker."""

    source: str
    sink: DeadLetterSink
    # Whether an error means a dependency is unavailable (retry in place):
    # messaging.unavailable.unavailable for the services.
    transient: Callable[[BaseException], bool]
    max_attempts: int = 5
    backoff_base_s: float = 0.2
    backoff_max_s: float = 30.0
    poison: tuple[type[BaseException], ...] = UNREADABLE
    # Which messages of the broker this policy covers (a broker-level middleware
    # sees every subscriber's messages; request/reply queues answer instead).
    applies: Callable[[StreamMessage[Any]], bool] = lambda _: True

    def __post_init__(self) -> None:
        # Series exist at 0 from the start, so that increase() sees the first
        # dead letter after a restart (a series born at 1 shows no increase).
        for kind in ("poison", "failing"):
            DEAD_LETTERED.labels(self.source, kind)
        for kind in ("transient", "failure"):
            RETRIED.labels(self.source, kind)

    def __call__(self, msg: Any, /, *, context: ContextRepo) -> BaseMiddleware:
        return _DeadLetterMiddleware(msg, context=context, policy=self)


class _DeadLetterMiddleware(BaseMiddleware):
    def __init__(self, msg: Any, /, *, context: ContextRepo, policy: DeadLetterPolicy) -> None:
        super().__init__(msg, context=context)
        self.policy = policy

    async def consume_scope(self, call_next: AsyncFuncAny, msg: StreamMessage[Any]) -> Any:
        p = self.policy
        if not p.applies(msg):
            return await call_next(msg)
        failures = 0
        outages = 0
        while True:
            try:
                return await call_next(msg)
            except p.poison as exc:
                await self._dead_letter(msg, "poison", f"{type(exc).__name__}: {exc}")
                return None
            except Exception as exc:
                if p.transient(exc):
                    # A dependency is down: wait and retry the same message; never
                    # give up on it (it is not the message's fault) and never skip
                    # ahead.
                    outages += 1
                    RETRIED.labels(p.source, "transient").inc()
                    delay = full_jitter(outages, p.backoff_base_s, p.backoff_max_s)
                    log.warning("transient failure (%r); retrying in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
                    continue
                failures += 1
                if failures >= p.max_attempts:
                    reason = f"failed {failures} times; last: {type(exc).__name__}: {exc}"
                    log.exception("giving up on message %s", msg.message_id)
                    await self._dead_letter(msg, "failing", reason)
                    return None
                RETRIED.labels(p.source, "failure").inc()
                await asyncio.sleep(full_jitter(failures, p.backoff_base_s, p.backoff_max_s))

    async def _dead_letter(self, msg: StreamMessage[Any], kind: str, reason: str) -> None:
        log.error(
            "dead-lettering message %s from %s: %s", msg.message_id, self.policy.source, reason
        )
        await self.policy.sink(msg, kind, reason[:1000])
        DEAD_LETTERED.labels(self.policy.source, kind).inc()


# W3C trace context and baggage: read by the tracing middleware, which runs
# before the dead-letter policy and fails on a value that is not text.
TRACE_CONTEXT_HEADERS = ("traceparent", "tracestate", "baggage")
Parse = Callable[[Any], Awaitable[StreamMessage[Any]]]


async def parse_kafka_record(record: ConsumerRecord[Any, Any], parse: Parse) -> StreamMessage[Any]:
    """FastStream's Kafka parser, for header values that are not UTF-8 or are
    null (Kafka allows both): read with replacement characters, null as empty.
    FastStream's own parser raises on them before any middleware sees the
    message, which would then be neither processed nor dead-lettered, and
    skipped by the next commit. Read this way, a garbled CloudEvents attribute
    fails the envelope check and the message is dead-lettered as poison."""
    if any(value is None or not _is_utf8(value) for _key, value in record.headers):
        record.headers = tuple(
            (key, b"" if value is None else value.decode(errors="replace").encode())
            for key, value in record.headers
        )
    return await parse(record)


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


async def parse_rabbit_message(message: IncomingMessage, parse: Parse) -> StreamMessage[Any]:
    """FastStream's RabbitMQ parser, without trace-context headers that are not
    text (AMQP headers may be numbers, lists, tables, bytes): OpenTelemetry's
    propagators raise on them in the tracing middleware, outside the
    dead-letter policy, and the message would be requeued for ever."""
    parsed = await parse(message)
    headers = parsed.headers
    if any(not isinstance(headers.get(h, ""), str) for h in TRACE_CONTEXT_HEADERS):
        parsed.headers = {
            k: v for k, v in headers.items() if k not in TRACE_CONTEXT_HEADERS or isinstance(v, str)
        }
    return parsed
