"""Publishing outbox rows to Kafka and RabbitMQ, one batch at a time.

Each row gets one outcome:
- SENT: the broker has it (Kafka acks=all from the idempotent producer;
  RabbitMQ publisher confirm of a persistent, mandatory message);
- RETRY: the message itself failed (unroutable, unknown topic or exchange,
  rejected); counts as an attempt, retried with backoff, then failed;
- PERMANENT: it can never succeed as it is (too large); fails at once;
- UNAVAILABLE: the broker could not be reached; the row is left untouched
  (no attempt counted) and the relay pauses that broker with backoff, so an
  outage only delays messages, never fails them.

Both clients are used directly rather than through FastStream's publishers:
the relay must set every header itself (CloudEvents binary mode and the trace
context stored with the row, which FastStream's tracing middleware would
replace), and it publishes whole batches with per-message outcomes.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import aio_pika
import aio_pika.abc
import aiormq.exceptions
from aiokafka import AIOKafkaProducer
from aiokafka import errors as kafka_errors
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from messaging.envelope import CORRELATION_ID
from outbox_relay.store import OutboxRow

log = logging.getLogger(__name__)
# How long a topic found missing fails fast before its metadata is asked again.
MISSING_TOPIC_RECHECK_S = 10.0


class Outcome(enum.Enum):
    SENT = "sent"
    RETRY = "retry"
    PERMANENT = "permanent"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Result:
    row: OutboxRow
    outcome: Outcome
    error: str | None = None


# A row the relay cannot turn into a message (hand-edited, or from an
# incompatible writer): it goes to the failure log instead of crashing the relay.
MALFORMED = (KeyError, ValueError, TypeError, AttributeError)


def malformed(row: OutboxRow, exc: Exception) -> Result:
    return Result(row, Outcome.PERMANENT, f"malformed outbox row: {exc!r}")


class Publisher(Protocol):
    kind: str

    async def publish(self, rows: Sequence[OutboxRow]) -> list[Result]: ...

    async def close(self) -> None: ...


class PublishSpans:
    """One PRODUCER span per message, child of the trace stored with the row,
    so that the consumer continues the trace of the original request."""

    def __init__(self, system: str) -> None:
        self.system = system
        self.tracer = trace.get_tracer("outbox_relay")
        # Without an SDK provider there is nothing to record: pass the stored
        # context through untouched (consumers still join the request's trace)
        # and skip the per-message propagation work.
        self.enabled = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)

    def start(self, row: OutboxRow, destination: str) -> tuple[trace.Span, dict[str, str]]:
        if not self.enabled:
            return trace.INVALID_SPAN, row.headers.get("trace", {})
        parent = propagate.extract(row.headers.get("trace", {}))
        span = self.tracer.start_span(
            f"{destination} publish",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": self.system,
                "messaging.operation.type": "publish",
                "messaging.destination.name": destination,
                "messaging.message.id": str(row.message_id),
                "messaging.message.conversation_id": row.headers["ce"].get(CORRELATION_ID, ""),
            },
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        return span, carrier

    def end(self, span: trace.Span, result: Result) -> Result:
        if not self.enabled:
            return result
        if result.outcome is not Outcome.SENT:
            span.set_status(Status(StatusCode.ERROR, result.error))
        span.set_attribute("messaging.outbox.outcome", result.outcome.value)
        span.end()
        return result


class KafkaPublisher:
    kind = "kafka"

    def __init__(self, client: Mapping[str, Any], timeout_s: float, linger_ms: int) -> None:
        # aiokafka's connection arguments: messaging.connections.kafka_client_options().
        self.client = dict(client)
        self.timeout_s = timeout_s
        self.linger_ms = linger_ms
        self.spans = PublishSpans("kafka")
        self._producer: AIOKafkaProducer | None = None
        self._missing_topics: dict[str, float] = {}
        self._lock = asyncio.Lock()

    async def _connected(self) -> AIOKafkaProducer:
        async with self._lock:
            return await self._connect_once()

    async def _connect_once(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                **self.client,
                acks="all",
                # Broker-side de-duplication of producer retries; keeps per-partition order.
                enable_idempotence=True,
                linger_ms=self.linger_ms,
                max_batch_size=256 * 1024,
                request_timeout_ms=int(self.timeout_s * 1000),
            )
            try:
                await asyncio.wait_for(producer.start(), self.timeout_s)
            except BaseException:
                await _quietly(producer.stop())
                raise
            self._producer = producer
        return self._producer

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await _quietly(producer.stop())

    async def _broker_reachable(self, producer: AIOKafkaProducer) -> bool:
        try:
            return bool(await asyncio.wait_for(producer.client.force_metadata_update(), 3))
        except (TimeoutError, kafka_errors.KafkaError):
            return False

    async def publish(self, rows: Sequence[OutboxRow]) -> list[Result]:
        try:
            producer = await self._connected()
        except (TimeoutError, OSError, kafka_errors.KafkaError) as exc:
            return [Result(r, Outcome.UNAVAILABLE, f"kafka: {exc!r}") for r in rows]
        topic_errors = await self._topic_errors(producer, rows)
        results, in_flight = await self._send(producer, rows, topic_errors)
        delivered = await asyncio.gather(*(f for _, _, f in in_flight), return_exceptions=True)
        for (i, span, _), outcome in zip(in_flight, delivered, strict=True):
            row = rows[i]
            if not isinstance(outcome, BaseException):
                result = Result(row, Outcome.SENT)
            elif isinstance(outcome, kafka_errors.MessageSizeTooLargeError):
                result = Result(row, Outcome.PERMANENT, f"kafka: {outcome!r}")
            else:
                result = Result(row, Outcome.UNAVAILABLE, f"kafka: {outcome!r}")
            results[i] = self.spans.end(span, result)
        return await self._after_outages(producer, [results[i] for i in range(len(rows))])

    async def _topic_errors(
        self, producer: AIOKafkaProducer, rows: Sequence[OutboxRow]
    ) -> dict[str, Result | None]:
        """Each topic's metadata, resolved once per batch: a missing topic must
        not make every one of its messages wait a full metadata timeout, and
        once found missing it fails fast for a while instead of delaying every
        batch. None for a topic that is there."""
        topic_errors: dict[str, Result | None] = {}
        now = time.monotonic()
        for topic in {r.destination for r in rows}:
            if self._missing_topics.get(topic, 0) > now:
                topic_errors[topic] = Result(rows[0], Outcome.RETRY, f"unknown topic {topic!r}")
                continue
            try:
                await asyncio.wait_for(producer.partitions_for(topic), min(self.timeout_s, 3))
                topic_errors[topic] = None
            except (TimeoutError, kafka_errors.KafkaError) as exc:
                if await self._broker_reachable(producer):
                    self._missing_topics[topic] = time.monotonic() + MISSING_TOPIC_RECHECK_S
                    topic_errors[topic] = Result(rows[0], Outcome.RETRY, f"unknown topic {topic!r}")
                else:
                    topic_errors[topic] = Result(rows[0], Outcome.UNAVAILABLE, f"kafka: {exc!r}")
        return topic_errors

    async def _send(
        self,
        producer: AIOKafkaProducer,
        rows: Sequence[OutboxRow],
        topic_errors: Mapping[str, Result | None],
    ) -> tuple[dict[int, Result], list[tuple[int, trace.Span, asyncio.Future[Any]]]]:
        """Every row handed to the producer: the results known already (by row
        index), and the deliveries in flight."""
        results: dict[int, Result] = {}
        in_flight: list[tuple[int, trace.Span, asyncio.Future[Any]]] = []
        for i, row in enumerate(rows):
            failure = topic_errors[row.destination]
            if failure is not None:
                results[i] = Result(row, failure.outcome, failure.error)
                continue
            try:
                headers = [(k, v.encode()) for k, v in row.headers["binary"].items()]
            except MALFORMED as exc:
                results[i] = malformed(row, exc)
                continue
            span, trace_headers = self.spans.start(row, row.destination)
            headers += [(k, v.encode()) for k, v in trace_headers.items()]
            try:
                future = await producer.send(
                    row.destination,
                    value=row.payload.encode(),
                    key=row.ordering_key.encode(),
                    headers=headers,
                )
            except kafka_errors.MessageSizeTooLargeError as exc:
                results[i] = self.spans.end(span, Result(row, Outcome.PERMANENT, f"kafka: {exc!r}"))
            except (TimeoutError, kafka_errors.KafkaError) as exc:
                results[i] = self.spans.end(
                    span, Result(row, Outcome.UNAVAILABLE, f"kafka: {exc!r}")
                )
            else:
                in_flight.append((i, span, future))
        return results, in_flight

    async def _after_outages(
        self, producer: AIOKafkaProducer, ordered: list[Result]
    ) -> list[Result]:
        if any(r.outcome is Outcome.UNAVAILABLE for r in ordered):
            if await self._broker_reachable(producer):
                # The broker answers: these were message-level failures after all.
                ordered = [
                    Result(r.row, Outcome.RETRY, r.error) if r.outcome is Outcome.UNAVAILABLE else r
                    for r in ordered
                ]
            else:
                # A fresh producer (new idempotence session) once the broker is back.
                await self.close()
        return ordered


class RabbitPublisher:
    kind = "rabbitmq"

    def __init__(
        self, url: str, timeout_s: float, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.ssl_context = ssl_context
        self.spans = PublishSpans("rabbitmq")
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._exchanges: dict[str, aio_pika.abc.AbstractExchange] = {}
        self._lock = asyncio.Lock()

    async def _channel_open(self) -> aio_pika.abc.AbstractChannel:
        async with self._lock:
            return await self._open_once()

    async def _open_once(self) -> aio_pika.abc.AbstractChannel:
        if self._connection is None or self._connection.is_closed:
            self._channel = None
            self._connection = await aio_pika.connect(
                self.url, timeout=self.timeout_s, ssl_context=self.ssl_context
            )
        if self._channel is None or self._channel.is_closed:
            self._exchanges = {}
            self._channel = await self._connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
        return self._channel

    async def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            await _quietly(connection.close())

    async def _exchange(self, name: str) -> aio_pika.abc.AbstractExchange:
        """The exchange, checked once per channel with a passive declare: a missing
        exchange is a message-level failure, not a reason to drop the channel
        under every other message of the batch."""
        if name not in self._exchanges:
            channel = await self._channel_open()
            if name == "":
                self._exchanges[name] = channel.default_exchange
            else:
                self._exchanges[name] = await channel.get_exchange(name, ensure=True)
        return self._exchanges[name]

    async def publish(self, rows: Sequence[OutboxRow]) -> list[Result]:
        try:
            await asyncio.wait_for(self._channel_open(), self.timeout_s)
        except (TimeoutError, OSError, aiormq.exceptions.AMQPError, RuntimeError) as exc:
            # RuntimeError: aiormq's "connection closed" when the broker went away
            # under a connection that aio-pika still reports open (a broker
            # restart). Drop it; the next batch connects afresh.
            await self.close()
            return [Result(r, Outcome.UNAVAILABLE, f"rabbitmq: {exc!r}") for r in rows]

        exchanges: dict[str, aio_pika.abc.AbstractExchange | Result] = {}
        for name in {r.destination for r in rows}:
            try:
                exchanges[name] = await asyncio.wait_for(self._exchange(name), self.timeout_s)
            except aiormq.exceptions.ChannelNotFoundEntity as exc:
                exchanges[name] = Result(rows[0], Outcome.RETRY, f"rabbitmq: {exc}")
            except (TimeoutError, OSError, aiormq.exceptions.AMQPError, RuntimeError) as exc:
                exchanges[name] = Result(rows[0], Outcome.UNAVAILABLE, f"rabbitmq: {exc!r}")

        results = await asyncio.gather(*(self._publish_one(row, exchanges) for row in rows))
        if any(r.outcome is Outcome.UNAVAILABLE for r in results):
            await self.close()
        return list(results)

    async def _publish_one(
        self,
        row: OutboxRow,
        exchanges: Mapping[str, aio_pika.abc.AbstractExchange | Result],
    ) -> Result:
        exchange = exchanges[row.destination]
        if isinstance(exchange, Result):
            return Result(row, exchange.outcome, exchange.error)
        try:
            ce = row.headers["ce"]
            headers: dict[str, Any] = dict(row.headers["binary"])
            timestamp = datetime.fromisoformat(ce["time"])
        except MALFORMED as exc:
            return malformed(row, exc)
        span, trace_headers = self.spans.start(row, f"{row.destination}/{row.routing_key}")
        message = aio_pika.Message(
            body=row.payload.encode(),
            headers={**headers, **trace_headers},
            content_type=ce.get("datacontenttype", "application/json"),
            message_id=str(row.message_id),
            correlation_id=ce.get(CORRELATION_ID),
            type=row.message_type,
            app_id=ce.get("source"),
            timestamp=timestamp,
            priority=row.priority,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            await exchange.publish(
                message, routing_key=row.routing_key or "", mandatory=True, timeout=self.timeout_s
            )
            result = Result(row, Outcome.SENT)
        except aio_pika.exceptions.DeliveryError as exc:
            reply = getattr(exc.frame, "reply_text", None) or "nacked"
            result = Result(row, Outcome.RETRY, f"rabbitmq: not delivered: {reply}")
        except aiormq.exceptions.ChannelClosed as exc:
            result = Result(row, Outcome.RETRY, f"rabbitmq: channel closed: {exc}")
        except (TimeoutError, OSError, aiormq.exceptions.AMQPError, RuntimeError) as exc:
            result = Result(row, Outcome.UNAVAILABLE, f"rabbitmq: {exc!r}")
        return self.spans.end(span, result)


async def _quietly(awaitable: Any) -> None:
    try:
        await asyncio.wait_for(awaitable, 5)
    except Exception:
        log.debug("closing a broker client failed", exc_info=True)
