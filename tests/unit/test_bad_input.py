"""What the consumers do with input the message fuzzer (tests/fuzz/messages.py)
found them mishandling, on the services' own brokers run by FastStream's
in-memory test brokers (handler logic only; `make fuzz` proves it on the real
ones). Each of these was a message redelivered for ever, one skipped without a
trace, or a mail sent once per retry."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
import sqlalchemy.exc
from aiokafka import ConsumerRecord
from aiokafka.errors import MessageSizeTooLargeError
from faststream import Context
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.rabbit import RabbitBroker, RabbitExchange, RabbitQueue, TestRabbitBroker
from faststream.rabbit.testing import build_message
from opentelemetry.sdk.trace import TracerProvider

from catalogue.contracts.notifications import NotificationKind, SendNotification
from catalogue.topology import (
    DEAD_LETTER_EXCHANGE,
    NOTIFICATION_PARKING_LOT,
    NOTIFICATION_SEND,
    ORDERS,
    ORDERS_POINT_SERVICE_DLT,
    POINT_BALANCE,
    POINT_COMMANDS,
    POINT_COMMANDS_DEAD_LETTER,
)
from messaging.asyncapi import placeholder_settings
from messaging.consumer import Envelope, PoisonMessageError
from messaging.deadletter import kafka_dead_letter_topic
from notification_service.adapters.mailer import SmtpMailer, TemporaryDeliveryError
from notification_service.adapters.orm import deliveries
from notification_service.entrypoints.app import create_app as notification_app
from notification_service.entrypoints.consumers import delivery_attempt
from notification_service.service_layer import handlers
from notification_service.service_layer.unit_of_work import UnitOfWork
from notification_service.settings import NotificationServiceSettings
from point_service.entrypoints import replay
from point_service.entrypoints.app import create_app as point_app
from point_service.settings import PointServiceSettings

Dead = list[tuple[bytes, dict[str, Any]]]


def attributes(ce_type: str, prefix: str) -> dict[str, Any]:
    return {
        f"{prefix}specversion": "1.0",
        f"{prefix}id": str(uuid.uuid4()),
        f"{prefix}type": ce_type,
        f"{prefix}source": "unit",
    }


def inspect(broker: KafkaBroker | RabbitBroker, dead: Dead) -> None:
    """Record what reaches the dead-letter destinations."""

    if isinstance(broker, KafkaBroker):
        # What the sink publishes (a subscriber here would be under the
        # broker's dead-letter policy too).
        publish = broker.publish

        async def spy(body: Any, topic: str = "", **kwargs: Any) -> Any:
            if topic == ORDERS_POINT_SERVICE_DLT.topic:
                dead.append((body, kwargs.get("headers") or {}))
                return None
            return await publish(body, topic, **kwargs)

        broker.publish = spy  # type: ignore[method-assign,assignment]
        return

    async def record(message: Any = Context("message")) -> None:  # noqa: B008
        dead.append((message.body, dict(message.headers)))

    for queue, routing_key in (
        (POINT_COMMANDS_DEAD_LETTER, POINT_COMMANDS.routing_key),
        (NOTIFICATION_PARKING_LOT, NOTIFICATION_SEND.routing_key),
    ):
        broker.subscriber(
            RabbitQueue(queue, routing_key=routing_key, declare=False),
            RabbitExchange(DEAD_LETTER_EXCHANGE, declare=False),
            no_reply=True,
        )(record)


@contextlib.asynccontextmanager
async def point_kafka(dead: Dead) -> AsyncIterator[KafkaBroker]:
    app = point_app(PointServiceSettings.model_validate(placeholder_settings()), TracerProvider())
    [kafka] = [b for b in app.brokers if isinstance(b, KafkaBroker)]
    inspect(kafka, dead)
    async with TestKafkaBroker(kafka) as broker:
        yield broker


@contextlib.asynccontextmanager
async def rabbit_of(service: str, dead: Dead) -> AsyncIterator[RabbitBroker]:
    settings = placeholder_settings()
    app = (
        point_app(PointServiceSettings.model_validate(settings), TracerProvider())
        if service == "point"
        else notification_app(
            NotificationServiceSettings.model_validate(settings), TracerProvider()
        )
    )
    [rabbit] = [b for b in app.brokers if isinstance(b, RabbitBroker)]
    inspect(rabbit, dead)
    async with TestRabbitBroker(rabbit) as broker:
        yield broker


# -- Kafka `orders` ------------------------------------------------------------
@pytest.mark.parametrize("value", [b"\xff\xfe\xfd", None], ids=["not-utf8", "null"])
async def test_a_kafka_header_value_that_is_not_text_is_dead_lettered_not_skipped(
    value: bytes | None,
) -> None:
    """FastStream's parser raised on it before any middleware ran: neither
    processed nor dead-lettered, the record was skipped by the next commit."""
    dead: Dead = []
    async with point_kafka(dead) as broker:
        [orders] = [
            s
            for s in broker.subscribers
            if [getattr(t, "name", t) for t in s.topics] == [ORDERS.topic]  # type: ignore[attr-defined]
        ]
        headers = [(k, v.encode()) for k, v in attributes("order.placed", "ce_").items()]
        headers[1] = ("ce_id", value)
        record = ConsumerRecord(
            topic=ORDERS.topic, partition=0, offset=7, timestamp=0, timestamp_type=0,
            key=b"k", value=b"{}", checksum=None, serialized_key_size=1,
            serialized_value_size=2, headers=headers,
        )  # fmt: skip
        await orders.consume(record)
    [(body, headers_out)] = dead
    assert body == b"{}"
    assert headers_out["x-dead-letter-kind"] == "poison"
    assert headers_out["x-original-offset"] == "7"


async def test_a_reply_to_header_on_an_event_gets_no_reply() -> None:
    """A reply to `orders` came back as a new poison message; a reply to a topic
    that does not exist failed after the handler, and the record was
    redelivered for ever."""
    dead: Dead = []
    async with point_kafka(dead) as broker:
        headers = {**attributes("order.placed", "ce_"), "reply_to": ORDERS.topic}
        await broker.publish(b"{}", ORDERS.topic, headers=headers)
    assert len(dead) == 1, [h.get("x-dead-letter-reason", "")[:80] for _, h in dead]


async def test_a_text_body_that_is_not_utf8_is_poison_at_once() -> None:
    dead: Dead = []
    async with point_kafka(dead) as broker:
        headers = {**attributes("order.placed", "ce_"), "content-type": "text/plain"}
        await broker.publish(b"\xff\xfe not text", ORDERS.topic, headers=headers)
    [(_, headers_out)] = dead
    assert headers_out["x-dead-letter-kind"] == "poison", "not retried: it cannot change"
    assert "UnicodeDecodeError" in headers_out["x-dead-letter-reason"]


async def test_the_replay_skips_a_record_nested_too_deep_instead_of_failing() -> None:
    """json.loads raises RecursionError, not a ValueError: one such record on
    `orders` made `point-service rebuild-projection` fail for as long as the
    topic kept it."""
    headers = [(k, v.encode()) for k, v in attributes("order.placed", "ce_").items()]
    with pytest.raises(PoisonMessageError):
        await replay.apply(headers, b"[" * 5000 + b"]" * 5000, None, None)  # type: ignore[arg-type]


ORDER_PLACED = {
    "order_id": str(uuid.uuid4()),
    "customer_id": "c-1",
    "customer_email": "c-1@example.com",
    "currency": "EUR",
    "total": "12.50",
    "lines": [{"sku": "s", "quantity": 1, "unit_price": "12.50"}],
    "placed_at": "2026-01-01T00:00:00Z",
}


@pytest.mark.parametrize(
    "extra",
    [{"content-type": "text/plain"}, {"ce_schemaversion": "2"}],
    ids=["content-type", "schema-version"],
)
async def test_the_replay_skips_what_the_live_consumer_dead_letters(extra: dict[str, str]) -> None:
    """The live consumer dead-letters an OrderPlaced under a content type that
    is not JSON, or at another schema version; the replay granted its points,
    and the rebuilt projection differed from the live one."""
    headers = [(k, v.encode()) for k, v in {**attributes("order.placed", "ce_"), **extra}.items()]
    with pytest.raises(PoisonMessageError):
        await replay.apply(headers, json.dumps(ORDER_PLACED).encode(), None, None)  # type: ignore[arg-type]


@dataclass
class TooLargeOnce:
    """A broker whose first publish is too large for the topic."""

    published: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    async def publish(self, body: bytes, *, topic: str, key: Any, headers: dict[str, str]) -> None:
        if not self.published and len(body) > 10:
            self.published.append((b"refused", {}))
            raise MessageSizeTooLargeError("too large")
        self.published.append((body, headers))


async def test_a_dead_letter_too_large_for_the_topic_goes_without_its_body() -> None:
    """The failed publish rewound to the message, which failed again, for ever."""
    broker = TooLargeOnce()
    sink = kafka_dead_letter_topic(cast(KafkaBroker, broker), "dlt", "group")
    record = ConsumerRecord(
        topic=ORDERS.topic, partition=3, offset=41, timestamp=0, timestamp_type=0, key=b"k",
        value=b"x" * 100, checksum=None, serialized_key_size=1, serialized_value_size=100,
        headers=[],
    )  # fmt: skip

    @dataclass
    class Message:
        body: bytes
        headers: dict[str, str]
        raw_message: Any

    huge = Message(b"x" * 100, {"ce_id": "id-1", "ce_type": "t", "other": "y" * 500}, record)
    await sink(huge, "poison", "a reason")  # type: ignore[arg-type]
    [_, (body, headers)] = broker.published
    assert body == b""
    assert headers["ce_id"] == "id-1"
    assert "other" not in headers
    assert headers["x-original-partition"] == "3"
    assert headers["x-original-offset"] == "41"
    assert "100 bytes" in headers["x-dead-letter-body-omitted"]


# -- RabbitMQ `point.commands`, `point.balance`, `notification.send` -----------
@pytest.mark.parametrize(
    ("service", "queue"),
    [("point", POINT_COMMANDS.routing_key), ("notification", NOTIFICATION_SEND.routing_key)],
)
async def test_a_reply_to_on_a_command_gets_no_reply(service: str, queue: str) -> None:
    """notification-service may not publish to the default exchange: the
    refused reply requeued the command for ever, parking a copy each time."""
    dead: Dead = []
    async with rabbit_of(service, dead) as broker:
        ce_type = "point.grant" if service == "point" else "notification.send"
        await broker.publish(b"[]", queue, headers=attributes(ce_type, "ce-"), reply_to=queue)
    assert len(dead) == 1


@pytest.mark.parametrize("traceparent", [5, [1, 2], bytearray(b"\xff"), True])
async def test_trace_context_that_is_not_text_does_not_stop_a_message(traceparent: Any) -> None:
    """OpenTelemetry's propagator raised on it in the tracing middleware, before
    the dead-letter policy: the message was requeued for ever."""
    dead: Dead = []
    async with rabbit_of("notification", dead) as broker:
        # Straight to the subscriber: the test broker's publish would put a
        # trace context of its own in the headers.
        message = await build_message(b"{}", NOTIFICATION_SEND.routing_key)
        message.headers.update(attributes("notification.send", "ce-"))
        message.headers["traceparent"] = traceparent
        [send] = [s for s in broker.subscribers if s.queue.name == NOTIFICATION_SEND.routing_key]  # type: ignore[attr-defined]
        await send.consume(message)
    [(_, parked)] = dead
    assert parked["x-dead-letter-kind"] == "poison"


async def test_a_balance_request_is_answered_only_through_direct_reply_to() -> None:
    """An answer to a queue the request names (here a command queue) made
    point-service publish where any sender said."""
    dead: Dead = []
    async with rabbit_of("point", dead) as broker:
        with contextlib.suppress(PoisonMessageError):
            await broker.publish(
                {"customer_id": "c-1"},
                POINT_BALANCE.routing_key,
                reply_to=POINT_COMMANDS.routing_key,
            )
    assert dead == [], "nothing answered into point.commands"


@pytest.mark.parametrize("attempt", ["abc", {"n": 1}, [1], 0, 3_000_000_000, True])
def test_a_delivery_attempt_header_out_of_range_is_poison(attempt: object) -> None:
    with pytest.raises(PoisonMessageError):
        delivery_attempt(attempt)


@pytest.mark.parametrize("attempt", [1, 4, "2"])
def test_a_delivery_attempt_in_range_is_read(attempt: object) -> None:
    assert delivery_attempt(attempt) == int(cast(int, attempt))


def test_an_attribute_that_is_not_utf8_is_poison() -> None:
    headers: dict[str, Any] = {**attributes("notification.send", "ce-"), "ce-id": b"\xff\xfe"}
    with pytest.raises(PoisonMessageError, match="not UTF-8"):
        Envelope.from_headers(headers)


# -- notification-service: record, send, commit ----------------------------------
@dataclass
class Result:
    """What an INSERT ... ON CONFLICT DO NOTHING RETURNING gives back: the row,
    here every time (no conflict)."""

    row: tuple[object, ...]

    def first(self) -> tuple[object, ...]:
        return self.row


@dataclass
class Session:
    refuse_delivery_row: bool

    async def execute(self, statement: Any) -> Result:
        if self.refuse_delivery_row and getattr(statement, "table", None) is deliveries:
            raise sqlalchemy.exc.DBAPIError(
                "insert", {}, Exception('invalid byte sequence for encoding "UTF8": 0x00')
            )
        return Result((uuid.uuid4(),))


@dataclass
class Sessions:
    refuse_delivery_row: bool = False
    committed: int = 0
    rolled_back: int = 0

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[Session]:
        try:
            yield Session(self.refuse_delivery_row)
        except BaseException:
            self.rolled_back += 1
            raise
        self.committed += 1


@dataclass
class Mailer:
    fail: bool = False
    sent: int = 0

    async def send(self, message_id: str, command: SendNotification) -> None:
        if self.fail:
            raise TemporaryDeliveryError("421 try later")
        self.sent += 1


def command_and_envelope() -> tuple[SendNotification, Envelope]:
    command = SendNotification(
        kind=NotificationKind.MARKETING, recipient="a@example.com", subject="s\x00", body="b"
    )
    envelope = Envelope(uuid.uuid4(), "notification.send", "unit", None, None, 1, "c", None)
    return command, envelope


async def deliver(
    command: SendNotification, envelope: Envelope, sessions: Sessions, mailer: Mailer
) -> handlers.Outcome:
    uow = UnitOfWork(sessions)  # type: ignore[arg-type]
    return await handlers._deliver(command, envelope, 1, uow, cast(SmtpMailer, mailer))


async def test_a_delivery_the_database_refuses_sends_no_mail() -> None:
    """The row was written after the mail went out: each retry of the policy
    mailed again (5 mails, then parked)."""
    sessions, mailer = Sessions(refuse_delivery_row=True), Mailer()
    command, envelope = command_and_envelope()
    with pytest.raises(sqlalchemy.exc.DBAPIError):
        await deliver(command, envelope, sessions, mailer)
    assert mailer.sent == 0


async def test_a_delivered_mail_commits_its_record_and_a_failed_one_rolls_it_back() -> None:
    command, envelope = command_and_envelope()
    sessions, mailer = Sessions(), Mailer()
    outcome = await deliver(command, envelope, sessions, mailer)
    assert (outcome, mailer.sent, sessions.committed) == (handlers.Delivered(), 1, 1)
    sessions, mailer = Sessions(), Mailer(fail=True)
    outcome = await deliver(command, envelope, sessions, mailer)
    assert isinstance(outcome, handlers.RetryLater)
    assert (sessions.committed, sessions.rolled_back) == (0, 1)
