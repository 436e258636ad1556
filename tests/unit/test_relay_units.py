"""Pieces of the relay that need no broker: backoff, table names, CloudEvents mapping."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat

from messaging.outbox.schema import checked_table_name
from messaging.relay.publishers import cloudevent
from messaging.relay.relay import backoff_delay
from messaging.relay.settings import RelaySettings
from messaging.relay.store import OutboxRow


def test_backoff_grows_exponentially_with_full_jitter_and_a_cap() -> None:
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (10, 60.0), (50, 60.0)]:
        delays = [backoff_delay(attempt, 0.5, 60.0) for _ in range(500)]
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


def test_a_row_becomes_a_binary_mode_cloudevent_on_kafka() -> None:
    message_id = uuid.uuid4()
    row = OutboxRow(
        id=1,
        message_id=message_id,
        message_type="order.placed",
        destination_kind="kafka",
        destination="orders",
        routing_key=None,
        ordering_key="o-1",
        payload=json.dumps({"order_id": "o-1"}),
        headers={
            "ce": {
                "specversion": "1.0",
                "id": str(message_id),
                "type": "order.placed",
                "source": "order-service",
                "subject": "o-1",
                "time": "2026-11-25T10:00:00.123456Z",
                "datacontenttype": "application/json",
                "schemaversion": "1",
                "correlationid": "c-1",
            },
            "trace": {},
        },
        priority=None,
        best_effort=False,
        attempts=0,
        created_at=datetime.now(UTC),
    )
    record = ce_kafka.to_binary(cloudevent(row), JSONFormat())
    assert record.headers["ce_id"] == str(message_id).encode()
    assert record.headers["ce_schemaversion"] == b"1"
    assert record.headers["ce_time"] == b"2026-11-25T10:00:00.123456Z"
    assert record.headers["content-type"] == b"application/json"
    assert json.loads(record.value) == {"order_id": "o-1"}
    parsed = ce_kafka.from_binary(record, JSONFormat())
    assert parsed.get_id() == str(message_id)
    assert parsed.get_extension("correlationid") == "c-1"
