"""Pieces of the relay that need no broker: backoff, table names, CloudEvents mapping."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.bindings import rabbitmq as ce_rabbitmq
from cloudevents.core.formats.json import JSONFormat

from messaging.backoff import full_jitter
from messaging.envelope import Contract, KafkaTopic, MessageContext, OutgoingMessage, RabbitRoute
from messaging.outbox.names import checked_table_name
from messaging.outbox.writer import outbox_row
from outbox_relay.settings import RelaySettings


def test_backoff_grows_exponentially_with_full_jitter_and_a_cap() -> None:
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (10, 60.0), (50, 60.0)]:
        delays = [full_jitter(attempt, 0.5, 60.0) for _ in range(500)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8, "jitter spans the whole window"
        assert min(delays) < ceiling * 0.2


@pytest.mark.parametrize("name", ["outbox; drop table x", "Outbox", "1outbox", "a" * 60, ""])
def test_outbox_table_names_are_plain_identifiers(name: str) -> None:
    with pytest.raises(ValueError, match="must match"):
        checked_table_name(name)


def test_relay_settings_reject_a_bad_table_name(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "DATABASE_NAME": "order",
        "DATABASE_USER": "u",
        "DATABASE_PASSWORD": "p",
        "RABBITMQ_USER": "u",
        "RABBITMQ_PASSWORD": "p",
        "OTEL_SERVICE_NAME": "relay",
        "OUTBOX_TABLE": "outbox;--",
    }.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match="outbox table name"):
        RelaySettings()


class Note(Contract):
    TYPE: ClassVar[str] = "test.note"
    SCHEMA_VERSION: ClassVar[int] = 3

    text: str


def note_to(destination: KafkaTopic | RabbitRoute) -> OutgoingMessage:
    return OutgoingMessage(
        Note(text="hi"), destination, "subject-1", "tests", MessageContext("c-1", "cause-1")
    )


def test_kafka_rows_carry_binary_mode_headers_the_cloudevents_sdk_reads_back() -> None:
    message = note_to(KafkaTopic("notes"))
    row = outbox_row(message)
    record = ce_kafka.KafkaMessage(
        headers={k: v.encode() for k, v in row["headers"]["binary"].items()},
        key=b"subject-1",
        value=json.dumps(row["payload"]).encode(),
    )
    event = ce_kafka.from_binary(record, JSONFormat())
    assert event.get_id() == str(message.id)
    assert event.get_type() == "test.note"
    assert event.get_subject() == "subject-1"
    assert event.get_time() == message.time
    assert event.get_extension("schemaversion") == "3"
    assert event.get_extension("correlationid") == "c-1"
    assert event.get_extension("causationid") == "cause-1"
    assert event.get_data() == {"text": "hi"}
    assert row["headers"]["binary"]["content-type"] == "application/json"


def test_rabbitmq_rows_carry_ce_dash_headers() -> None:
    message = note_to(RabbitRoute("commands", "notes"))
    binary = outbox_row(message)["headers"]["binary"]
    assert binary["ce-id"] == str(message.id)
    assert binary["ce-type"] == "test.note"
    assert binary["ce-schemaversion"] == "3"
    event = ce_rabbitmq.from_binary(
        ce_rabbitmq.RabbitMQMessage(headers=binary, content_type="application/json", body=b"{}"),
        JSONFormat(),
    )
    assert event.get_source() == "tests"
