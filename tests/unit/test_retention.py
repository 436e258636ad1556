"""messaging.inbox.retention without a database: the purge statement, the
batch loop, failures, the periodic task and its stop, the settings, and that
the inbox window outlasts what Kafka can redeliver."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY
from sqlalchemy import Delete, MetaData, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalogue.topology import ORDERS, TOPICS
from messaging.asyncapi import placeholder_settings
from messaging.inbox.retention import (
    InboxRetentionSettings,
    Retention,
    RetentionTask,
    inbox_retention,
)
from messaging.inbox.schema import inbox_table
from notification_service.settings import NotificationServiceSettings
from order_service.adapters.orm import idempotency_keys
from order_service.adapters.retention import idempotency_key_retention
from order_service.entrypoints.http import create_app as order_app
from order_service.settings import OrderServiceSettings
from point_service.settings import PointServiceSettings

ROOT = Path(__file__).resolve().parents[2]
INBOX = inbox_table(MetaData(), "inbox_under_test")
OTHER = inbox_table(MetaData(), "other_inbox_under_test")

Outcome = int | BaseException


@dataclass
class FakeSessions:
    """An async_sessionmaker whose sessions answer each purge statement with the
    next scripted outcome of its table: a row count, or an exception."""

    script: dict[str, list[Outcome]]
    default: Outcome = 0
    statements: list[Delete] = field(default_factory=list)
    committed: list[int] = field(default_factory=list)
    gate: asyncio.Event | None = None
    in_batch: asyncio.Event = field(default_factory=asyncio.Event)
    _last: int = 0

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[FakeSessions]:
        yield self
        # Reached only when the body did not raise: the transaction commits.
        self.committed.append(self._last)

    async def execute(self, statement: Delete) -> Any:
        self.statements.append(statement)
        self.in_batch.set()
        if self.gate is not None:
            await self.gate.wait()
        queue = self.script.get(cast(Table, statement.table).name, [])
        outcome = queue.pop(0) if queue else self.default
        if isinstance(outcome, BaseException):
            raise outcome
        self._last = outcome
        return type("Result", (), {"rowcount": outcome})()

    def tables(self) -> list[str]:
        return [cast(Table, s.table).name for s in self.statements]


def task(
    fake: FakeSessions, *retentions: Retention, interval_s: float = 300, batch_size: int = 3
) -> RetentionTask:
    return RetentionTask(
        cast(async_sessionmaker[AsyncSession], fake),
        retentions or [Retention(INBOX, "received_at", timedelta(days=15))],
        interval_s,
        batch_size,
    )


def purged(table: str) -> float:
    return REGISTRY.get_sample_value("messaging_retention_purged_rows_total", {"table": table}) or 0


def failures(table: str) -> float:
    return REGISTRY.get_sample_value("messaging_retention_failures_total", {"table": table}) or 0


async def until(condition: Callable[[], bool], timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


# -- the statement -----------------------------------------------------------
@pytest.mark.parametrize(
    ("retention", "key", "column"),
    [
        (
            Retention(INBOX, "received_at", timedelta(days=15)),
            "consumer, message_id",
            "received_at",
        ),
        (Retention(idempotency_keys, "created_at", timedelta(hours=24)), "key", "created_at"),
    ],
)
def test_a_batch_deletes_the_oldest_expired_rows_by_primary_key_skipping_locked_ones(
    retention: Retention, key: str, column: str
) -> None:
    compiled = retention.purge_statement(500).compile(
        dialect=postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]
    )
    sql = " ".join(str(compiled).split())
    t = retention.table.name
    qualified = ", ".join(f"{t}.{k}" for k in key.split(", "))
    assert sql.startswith(f"DELETE FROM {t} WHERE ({qualified}) IN (SELECT {qualified} FROM {t}")
    assert f"WHERE {t}.{column} < now() - $1::INTERVAL ORDER BY {t}.{column}" in sql
    assert sql.endswith("LIMIT $2::INTEGER FOR UPDATE SKIP LOCKED)")
    assert list(compiled.params.values()) == [retention.keep, 500]


# -- one pass ----------------------------------------------------------------
async def test_a_pass_deletes_batch_by_batch_each_in_its_own_transaction_until_a_short_batch() -> (
    None
):
    fake = FakeSessions({INBOX.name: [3, 3, 1, 3]})
    before = purged(INBOX.name)
    assert await task(fake).purge_all() == {INBOX.name: 7}
    assert fake.committed == [3, 3, 1], "stops after the short batch"
    assert purged(INBOX.name) - before == 7


async def test_full_batches_continue_until_an_empty_one() -> None:
    fake = FakeSessions({INBOX.name: [3, 3, 0]})
    assert await task(fake).purge_all() == {INBOX.name: 6}
    assert fake.committed == [3, 3, 0]


async def test_nothing_due_is_one_empty_batch() -> None:
    fake = FakeSessions({})
    before = purged(INBOX.name)
    assert await task(fake).purge_all() == {INBOX.name: 0}
    assert len(fake.statements) == 1
    assert purged(INBOX.name) == before


async def test_series_exist_at_zero_before_the_first_purge() -> None:
    table = inbox_table(MetaData(), "never_purged_inbox")
    task(FakeSessions({}), Retention(table, "received_at", timedelta(days=1)))
    assert purged(table.name) == 0
    assert failures(table.name) == 0
    assert (
        REGISTRY.get_sample_value(
            "messaging_retention_purged_rows_total", {"table": "never_purged_inbox"}
        )
        == 0
    )


@pytest.mark.parametrize(
    ("error", "level"),
    [
        (OSError("connection refused"), logging.WARNING),
        (RuntimeError("a bug"), logging.ERROR),
    ],
)
async def test_a_failing_table_is_logged_and_counted_and_the_others_are_still_purged(
    error: BaseException, level: int, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeSessions({INBOX.name: [3, error], OTHER.name: [2]})
    retentions = (
        Retention(INBOX, "received_at", timedelta(days=15)),
        Retention(OTHER, "received_at", timedelta(days=15)),
    )
    before = (purged(INBOX.name), failures(INBOX.name), purged(OTHER.name))
    with caplog.at_level(logging.WARNING, logger="messaging.inbox.retention"):
        result = await task(fake, *retentions).purge_all()
    assert result == {OTHER.name: 2}
    assert fake.tables() == [INBOX.name, INBOX.name, OTHER.name]
    # The batch that committed before the failure counts; the failed one does not.
    assert purged(INBOX.name) - before[0] == 3
    assert failures(INBOX.name) - before[1] == 1
    assert purged(OTHER.name) - before[2] == 2
    [record] = [r for r in caplog.records if INBOX.name in r.getMessage()]
    assert record.levelno == level
    assert "next try in 300s" in record.getMessage()


# -- the task ----------------------------------------------------------------
async def test_the_task_purges_at_start_then_every_interval_and_outlives_a_database_outage() -> (
    None
):
    outage = ConnectionRefusedError("the database is down")
    fake = FakeSessions({INBOX.name: [2, outage, outage, 1]})
    retention = task(fake, interval_s=0.05)
    before = (purged(INBOX.name), failures(INBOX.name))
    await retention.start()
    await until(lambda: len(fake.statements) >= 6)
    assert retention._task is not None
    assert not retention._task.done(), "an outage does not end the task"
    await retention.stop()
    assert fake.committed[:3] == [2, 1, 0]
    assert purged(INBOX.name) - before[0] == 3
    assert failures(INBOX.name) - before[1] == 2


async def test_stop_lets_the_batch_in_flight_commit_and_starts_no_other() -> None:
    gate = asyncio.Event()
    fake = FakeSessions({INBOX.name: [3, 3, 3]}, gate=gate)
    retention = task(fake)
    await retention.start()
    await fake.in_batch.wait()
    stopping = asyncio.create_task(retention.stop())
    await asyncio.sleep(0.05)
    assert not stopping.done(), "stop waits for the batch in flight"
    gate.set()
    await asyncio.wait_for(stopping, 1)
    assert fake.committed == [3], "a full batch, yet no next one after stop"


async def test_stop_cancels_a_batch_that_hangs_past_the_stop_timeout() -> None:
    fake = FakeSessions({}, gate=asyncio.Event())
    retention = task(fake)
    retention.stop_timeout_s = 0.1
    await retention.start()
    await fake.in_batch.wait()
    await asyncio.wait_for(retention.stop(), 1)
    assert fake.committed == []


async def test_the_first_pass_runs_at_start_and_stop_waits_for_no_interval() -> None:
    fake = FakeSessions({})
    retention = task(fake, interval_s=3600)
    await retention.stop()
    await retention.start()
    # The first pass runs at start, not after an interval.
    await until(lambda: fake.committed == [0], timeout_s=1)
    started = time.monotonic()
    await retention.stop()
    await retention.stop()
    assert time.monotonic() - started < 0.5


# -- settings and wiring -----------------------------------------------------
@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for cls in (PointServiceSettings, NotificationServiceSettings, OrderServiceSettings):
        for name in cls.model_fields:
            monkeypatch.delenv(name.upper(), raising=False)


@pytest.mark.parametrize("cls", [PointServiceSettings, NotificationServiceSettings])
def test_consuming_services_read_the_inbox_retention_settings(
    cls: type[InboxRetentionSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    defaults = cls.model_validate(placeholder_settings())
    assert defaults.inbox_retention_days == 15
    assert defaults.inbox_purge_interval_s == 300
    assert defaults.inbox_purge_batch_size == 1000
    monkeypatch.setenv("INBOX_RETENTION_DAYS", "20")
    monkeypatch.setenv("INBOX_PURGE_INTERVAL_S", "60")
    monkeypatch.setenv("INBOX_PURGE_BATCH_SIZE", "250")
    s = cls.model_validate(placeholder_settings())
    retention = inbox_retention(cast(async_sessionmaker[AsyncSession], None), INBOX, s)
    [r] = retention.retentions
    assert (r.table, r.column, r.keep) == (INBOX, "received_at", timedelta(days=20))
    assert (retention.interval_s, retention.batch_size) == (60, 250)


def test_order_service_reads_the_idempotency_key_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = OrderServiceSettings.model_validate(placeholder_settings())
    assert defaults.idempotency_key_retention_hours == 24
    monkeypatch.setenv("IDEMPOTENCY_KEY_RETENTION_HOURS", "48")
    monkeypatch.setenv("IDEMPOTENCY_KEY_PURGE_INTERVAL_S", "30")
    monkeypatch.setenv("IDEMPOTENCY_KEY_PURGE_BATCH_SIZE", "100")
    s = OrderServiceSettings.model_validate(placeholder_settings())
    retention = idempotency_key_retention(cast(async_sessionmaker[AsyncSession], None), s)
    [r] = retention.retentions
    assert (r.table, r.column, r.keep) == (idempotency_keys, "created_at", timedelta(hours=48))
    assert (retention.interval_s, retention.batch_size) == (30, 100)


@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_window_must_be_positive(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOX_RETENTION_DAYS", value)
    with pytest.raises(ValueError, match="inbox_retention_days"):
        PointServiceSettings.model_validate(placeholder_settings())


async def test_order_service_runs_the_purge_in_its_lifespan_and_survives_a_down_database() -> None:
    settings = OrderServiceSettings.model_validate(
        {
            **placeholder_settings(),
            # Nothing listens on port 1: the purge's connection is refused at once.
            "database_host": "127.0.0.1",
            "database_port": 1,
            "rabbitmq_port": 1,
            "idempotency_key_purge_interval_s": 0.05,
        }
    )
    app = order_app(settings, TracerProvider())
    before = failures(idempotency_keys.name)
    async with app.router.lifespan_context(app):
        await until(lambda: failures(idempotency_keys.name) - before >= 2)
    assert "remembered for 24 hours" in (app.description or "")


# -- the window against what Kafka can redeliver ------------------------------
KAFKA_DEFAULT_HOURS = 168  # log.retention.hours and log.roll.hours, Kafka's defaults
RETENTION_CHECK = timedelta(minutes=5)  # log.retention.check.interval.ms


def kafka_hours(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)}=(\d+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else KAFKA_DEFAULT_HOURS


def test_the_inbox_window_outlasts_the_oldest_record_kafka_can_redeliver() -> None:
    """A record is deleted with its segment, once the segment's newest record is
    past retention; a segment spans up to log.roll.hours. A group whose offsets
    expired re-reads from the earliest record, so the inbox must remember ids
    longer than retention + roll + the retention check."""
    [orders] = [t for t in TOPICS if t.name == ORDERS.topic]
    assert not {"retention.ms", "segment.ms"} & set(orders.config), (
        "orders sets its own retention: compare with it below"
    )
    local = (ROOT / "deploy/local/config/kafka-server.properties").read_text()
    chart = (ROOT / "deploy/helm/reference-system/templates/infra/kafka.yaml").read_text()
    assert "KAFKA_LOG_RETENTION" not in chart
    assert "KAFKA_LOG_ROLL" not in chart, "the chart's Kafka keeps the defaults"
    for properties in (local, ""):
        horizon = (
            timedelta(hours=kafka_hours(properties, "log.retention.hours"))
            + timedelta(hours=kafka_hours(properties, "log.roll.hours"))
            + RETENTION_CHECK
        )
        window = timedelta(days=InboxRetentionSettings.model_fields["inbox_retention_days"].default)
        assert window > horizon, f"inbox window {window} <= Kafka's horizon {horizon}"
