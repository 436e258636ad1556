"""Retention of inbox ids and idempotency keys against the real stack's
PostgreSQL: one purge removes exactly the expired rows, batch by batch,
without waiting for rows another transaction holds; each service process
purges in the background at start and every interval; and what a duplicate
does once its id was forgotten (docs/messaging.md, "Retention")."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, cast

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from catalogue.contracts.notifications import NotificationKind, SendNotification
from catalogue.contracts.orders import OrderLine, OrderPlaced
from catalogue.contracts.points import GrantPoints
from messaging.consumer import Envelope
from messaging.database import build_engine
from messaging.inbox.retention import Retention, RetentionTask, purge_batch
from notification_service.adapters import orm as notification_orm
from notification_service.adapters.mailer import SmtpMailer
from notification_service.service_layer import handlers as notification_handlers
from notification_service.service_layer.unit_of_work import UnitOfWork as NotificationUnitOfWork
from notification_service.settings import NotificationServiceSettings
from order_service.adapters.orm import idempotency_keys
from order_service.settings import OrderServiceSettings
from point_service.adapters import orm as point_orm
from point_service.service_layer import handlers as point_handlers
from point_service.service_layer.unit_of_work import UnitOfWork as PointUnitOfWork
from point_service.settings import PointServiceSettings
from stackctl.apps import Apps
from stackctl.components import LocalStack
from tests.support.metrics import Samples, metric, scrape
from tests.support.waiting import free_port, wait_until

# Older than anything the stack wrote: a purge takes these first, in order.
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
PURGED = "messaging_retention_purged_rows_total"


@dataclass(frozen=True)
class Dedup:
    """One deduplication table of one service, and how to write test rows to it."""

    service: str
    database: str
    table: Table
    column: str
    keep: Callable[[Any], timedelta]
    settings: type[Any]

    def insert(self, tag: str, at: datetime, n: int) -> tuple[str, list[Any]]:
        if self.table is idempotency_keys:
            return (
                "insert into idempotency_keys (key, request_hash, created_at) "
                "select $1 || '-' || g, 'h', $2 from generate_series(1, $3) g",
                [tag, at, n],
            )
        return (
            f"insert into {self.table.name} (consumer, message_id, message_type, received_at) "
            "select $1, gen_random_uuid(), 'test', $2 from generate_series(1, $3)",
            [tag, at, n],
        )

    def tagged(self) -> str:
        if self.table is idempotency_keys:
            return "key like $1 || '-%'"
        return "consumer = $1"


INBOXES = {
    "point-service": Dedup(
        "point-service",
        "point",
        point_orm.inbox,
        "received_at",
        lambda s: timedelta(days=s.inbox_retention_days),
        PointServiceSettings,
    ),
    "notification-service": Dedup(
        "notification-service",
        "notification",
        notification_orm.inbox,
        "received_at",
        lambda s: timedelta(days=s.inbox_retention_days),
        NotificationServiceSettings,
    ),
}
IDEMPOTENCY = Dedup(
    "order-service",
    "order",
    idempotency_keys,
    "created_at",
    lambda s: timedelta(hours=s.idempotency_key_retention_hours),
    OrderServiceSettings,
)
DEDUPS = {**INBOXES, "order-service": IDEMPOTENCY}


def service_env(stack: LocalStack, service: str) -> dict[str, str]:
    apps = Apps(stack)
    env: Callable[[], dict[str, str]] = getattr(apps, f"{service.replace('-', '_')}_env")
    return env()


def settings_of(stack: LocalStack, dedup: Dedup) -> Any:
    env = service_env(stack, dedup.service)
    return dedup.settings.model_validate({k.lower(): v for k, v in env.items()})


@pytest.fixture
async def engine(local_stack: LocalStack, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    dedup: Dedup = request.param
    built = build_engine(settings_of(local_stack, dedup), "tests-retention")
    yield dedup, built
    await built.dispose()


class TaggedRows:
    """Rows tagged for one test in the services' tables, removed after it."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.made: list[tuple[Dedup, str]] = []
        self.conns: dict[str, asyncpg.Connection] = {}

    async def conn(self, database: str) -> asyncpg.Connection:
        if database not in self.conns:
            self.conns[database] = await asyncpg.connect(
                self.stack.postgres_dsn(database=database, user=database)
            )
        return self.conns[database]

    async def insert(self, dedup: Dedup, at: datetime, n: int) -> str:
        tag = f"retention-test-{uuid.uuid4().hex[:12]}"
        sql, args = dedup.insert(tag, at, n)
        await (await self.conn(dedup.database)).execute(sql, *args)
        self.made.append((dedup, tag))
        return tag

    async def count(self, dedup: Dedup, tag: str) -> int:
        conn = await self.conn(dedup.database)
        sql = f"select count(*) from {dedup.table.name} where {dedup.tagged()}"
        return int(await conn.fetchval(sql, tag))

    async def close(self) -> None:
        for dedup, tag in self.made:
            conn = await self.conn(dedup.database)
            await conn.execute(f"delete from {dedup.table.name} where {dedup.tagged()}", tag)
        for conn in self.conns.values():
            await conn.close()


@pytest.fixture
async def rows(local_stack: LocalStack) -> AsyncIterator[TaggedRows]:
    tagged = TaggedRows(local_stack)
    yield tagged
    await tagged.close()


def own_metrics() -> Samples:
    """This test process's own metrics, parsed as Prometheus would."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(REGISTRY).decode())
        for s in family.samples
    }


# -- one purge, batch by batch ------------------------------------------------
@pytest.mark.parametrize("engine", list(DEDUPS.values()), ids=list(DEDUPS), indirect=True)
async def test_one_purge_deletes_only_expired_rows_batch_by_batch(
    local_stack: LocalStack, engine: tuple[Dedup, AsyncEngine], rows: TaggedRows
) -> None:
    dedup, built = engine
    keep = dedup.keep(settings_of(local_stack, dedup))
    now = datetime.now(UTC)
    expired = await rows.insert(dedup, LONG_AGO, 25)
    # Just inside the window, and new: both stay.
    inside = await rows.insert(dedup, now - keep + timedelta(hours=1), 3)
    fresh = await rows.insert(dedup, now, 3)
    sessions = async_sessionmaker(built, expire_on_commit=False)
    retention = Retention(dedup.table, dedup.column, keep)

    remaining = []
    for _ in range(3):
        async with sessions.begin() as session:
            deleted = await purge_batch(session, retention, 10)
        remaining.append((deleted, await rows.count(dedup, expired)))
    # The oldest rows go first: the first two batches are ten of ours each, the
    # third our last five (and any other expired rows the table holds).
    assert remaining[:2] == [(10, 15), (10, 5)]
    assert remaining[2][0] >= 5
    assert remaining[2][1] == 0
    assert await rows.count(dedup, inside) == 3
    assert await rows.count(dedup, fresh) == 3

    # A whole pass: the rest, in batches, counted; the window's rows untouched.
    again = await rows.insert(dedup, LONG_AGO, 7)
    task = RetentionTask(sessions, [retention], interval_s=300, batch_size=3)
    before = metric(own_metrics(), PURGED, table=dedup.table.name)
    purged = await task.purge_all()
    assert purged[dedup.table.name] >= 7
    assert await rows.count(dedup, again) == 0
    assert await rows.count(dedup, inside) == 3
    assert await rows.count(dedup, fresh) == 3
    after = metric(own_metrics(), PURGED, table=dedup.table.name)
    assert after - before == purged[dedup.table.name]


@pytest.mark.parametrize("engine", [INBOXES["point-service"]], ids=["point-service"], indirect=True)
async def test_a_purge_skips_rows_another_transaction_holds_instead_of_waiting(
    local_stack: LocalStack, engine: tuple[Dedup, AsyncEngine], rows: TaggedRows
) -> None:
    dedup, built = engine
    held = await rows.insert(dedup, LONG_AGO, 5)
    free = await rows.insert(dedup, LONG_AGO + timedelta(seconds=1), 5)
    sessions = async_sessionmaker(built, expire_on_commit=False)
    retention = Retention(dedup.table, dedup.column, timedelta(days=1))
    other = await asyncpg.connect(local_stack.postgres_dsn(database=dedup.database, user="point"))
    try:
        async with other.transaction():
            # Another replica's purge, mid-batch.
            await other.execute("select 1 from inbox where consumer = $1 for update", held)
            started = time.monotonic()
            async with sessions.begin() as session:
                deleted = await purge_batch(session, retention, 5)
            assert time.monotonic() - started < 2, "did not wait for the held rows"
            assert deleted == 5
            assert await rows.count(dedup, held) == 5
            assert await rows.count(dedup, free) == 0
    finally:
        await other.close()


# -- the background task in each service process --------------------------------
@dataclass
class Spawned:
    process: subprocess.Popen[bytes]
    port: int
    log: IO[bytes]


@pytest.fixture
def spawn(local_stack: LocalStack, tmp_path: Path) -> Iterator[Callable[..., Spawned]]:
    """Another process of a service beside the supervised one, with its own
    settings, on a free port; stopped with SIGTERM after the test."""
    started: list[Spawned] = []

    def start(service: str, **overrides: str) -> Spawned:
        port = free_port()
        log = (tmp_path / f"{service}.log").open("wb")
        env = {
            **os.environ,
            **service_env(local_stack, service),
            "HTTP_PORT": str(port),
            "OTEL_SERVICE_NAME": f"{service}-retention-test",
            **overrides,
        }
        command = [str(Path(sys.executable).with_name(service)), "serve"]
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        started.append(Spawned(process, port, log))
        return started[-1]

    yield start
    for s in started:
        if s.process.poll() is None:
            s.process.send_signal(signal.SIGTERM)
            s.process.wait(30)
        s.log.close()


INTERVAL = {
    "point-service": "INBOX_PURGE_INTERVAL_S",
    "notification-service": "INBOX_PURGE_INTERVAL_S",
    "order-service": "IDEMPOTENCY_KEY_PURGE_INTERVAL_S",
}
# The spawned process keeps rows one hour; the supervised one beside it keeps
# them a day (order) or 15 days (inboxes) and purges every 5 minutes. Rows two
# hours old are therefore due for the spawned process only: a pass of the
# supervised one cannot take them and leave the spawned one's counter short.
KEEP_ONE_HOUR = {
    "point-service": {"INBOX_RETENTION_DAYS": str(1 / 24)},
    "notification-service": {"INBOX_RETENTION_DAYS": str(1 / 24)},
    "order-service": {"IDEMPOTENCY_KEY_RETENTION_HOURS": "1"},
}


@pytest.mark.parametrize("service", list(DEDUPS))
async def test_the_service_process_purges_at_start_and_every_interval(
    local_stack: LocalStack,
    service: str,
    rows: TaggedRows,
    spawn: Callable[..., Spawned],
    tmp_path: Path,
) -> None:
    dedup = DEDUPS[service]
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    at_start = await rows.insert(dedup, two_hours_ago, 3)
    proc = spawn(service, **{INTERVAL[service]: "2"}, **KEEP_ONE_HOUR[service])
    url = f"http://{local_stack.s.host}:{proc.port}/metrics"

    async def purged_by_process() -> float:
        try:
            return metric(await scrape(url), PURGED, table=dedup.table.name)
        except (OSError, httpx.HTTPError):
            # Its HTTP server binds once its startup hooks (the first purge
            # among them) have run: not listening yet is "nothing yet".
            return 0.0

    async def gone(tag: str) -> bool:
        return await rows.count(dedup, tag) == 0

    # Brokers first (FastStream's after_startup), then the first pass.
    assert await wait_until(lambda: gone(at_start), 90), (tmp_path / f"{service}.log").read_text()
    assert await wait_until(lambda: _at_least(purged_by_process, 3), 10)
    first = await purged_by_process()

    # Rows that expire later go at the next interval, not only at start.
    later = await rows.insert(dedup, two_hours_ago, 2)
    started = time.monotonic()
    assert await wait_until(lambda: gone(later), 15)
    assert time.monotonic() - started < 10
    assert await wait_until(lambda: _at_least(purged_by_process, first + 2), 5)
    assert proc.process.poll() is None, "the process keeps running"

    # uvicorn re-raises the SIGTERM it handled once the app has shut down.
    proc.process.send_signal(signal.SIGTERM)
    assert proc.process.wait(30) in (0, -signal.SIGTERM)
    lines = [json.loads(line) for line in (tmp_path / f"{service}.log").read_text().splitlines()]
    assert "Application shutdown complete." in [line["message"] for line in lines]
    purges = [line for line in lines if line["logger"] == "messaging.inbox.retention"]
    assert len(purges) >= 2, "a line per pass that purged something"
    assert {line["level"] for line in purges} == {"INFO"}, purges


async def _at_least(value: Callable[[], Awaitable[float]], n: float) -> bool:
    return await value() >= n


# -- what a duplicate does once its id is forgotten -----------------------------
def envelope_for(message_type: str) -> Envelope:
    message_id = uuid.uuid4()
    return Envelope(
        id=message_id,
        type=message_type,
        source="tests",
        subject=None,
        time=datetime.now(UTC),
        schema_version=1,
        correlation_id=str(message_id),
        causation_id=None,
    )


async def forget(conn: asyncpg.Connection, env: Envelope) -> None:
    """What the purge does to this message's inbox row once it is old enough."""
    assert await conn.execute("delete from inbox where message_id = $1", env.id) == "DELETE 1"


@pytest.mark.parametrize("engine", [INBOXES["point-service"]], ids=["point-service"], indirect=True)
async def test_point_service_processes_a_forgotten_duplicate_again(
    local_stack: LocalStack, engine: tuple[Dedup, AsyncEngine]
) -> None:
    """OrderPlaced: processed again, but the ledger's one grant per order makes
    it a no-op. GrantPoints (a manual adjustment): applied a second time."""
    _, built = engine
    sessions = async_sessionmaker(built, expire_on_commit=False)
    conn = await asyncpg.connect(local_stack.postgres_dsn(database="point", user="point"))
    customer = f"forgotten-{uuid.uuid4().hex[:8]}"
    try:
        placed = OrderPlaced(
            order_id=uuid.uuid4(),
            customer_id=customer,
            customer_email=f"{customer}@example.com",
            currency="EUR",
            total=Decimal("10.00"),
            lines=[OrderLine(sku="sku", quantity=1, unit_price=Decimal("10.00"))],
            placed_at=datetime.now(UTC),
        )
        env = envelope_for(OrderPlaced.TYPE)
        for _ in range(2):
            work = PointUnitOfWork(sessions, env.caused())
            assert await point_handlers.order_placed(placed, env, work, Decimal(1))
            await forget(conn, env)
        grants = await conn.fetchval(
            "select count(*) from point_ledger where order_id = $1", placed.order_id
        )
        assert grants == 1

        grant = GrantPoints(customer_id=customer, points=5, reason="goodwill")
        env = envelope_for(GrantPoints.TYPE)
        for _ in range(2):
            await point_handlers.grant_points(grant, env, PointUnitOfWork(sessions, env.caused()))
            await forget(conn, env)
        adjustments = await conn.fetchval(
            "select count(*) from point_ledger where customer_id = $1 and kind = 'adjustment'",
            customer,
        )
        assert adjustments == 2
    finally:
        # Written by calling the handlers, not from `orders`: a replay of the
        # topic (test_point_service, rebuild-projection) could not reproduce it.
        await conn.execute("delete from point_ledger where customer_id = $1", customer)
        await conn.execute("delete from point_balances where customer_id = $1", customer)
        await conn.close()


class CountingMailer:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, message_id: str, command: SendNotification) -> None:
        self.sent.append(message_id)


@pytest.mark.parametrize(
    "engine", [INBOXES["notification-service"]], ids=["notification-service"], indirect=True
)
async def test_notification_service_does_not_mail_a_forgotten_duplicate_again(
    local_stack: LocalStack, engine: tuple[Dedup, AsyncEngine]
) -> None:
    """Its inbox row purged, the copy is still found in the delivery history
    (kept DELIVERY_HISTORY_RETENTION_DAYS, longer than the inbox): a duplicate,
    no second mail."""
    _, built = engine
    sessions = async_sessionmaker(built, expire_on_commit=False)
    conn = await asyncpg.connect(
        local_stack.postgres_dsn(database="notification", user="notification")
    )
    mailer = CountingMailer()
    command = SendNotification(
        kind=NotificationKind.ORDER,
        recipient="forgotten@example.com",
        subject="forgotten",
        body="a duplicate after the window",
    )
    env = envelope_for(SendNotification.TYPE)
    try:
        outcome = await notification_handlers.deliver(
            command, env, 1, NotificationUnitOfWork(sessions), cast(SmtpMailer, mailer)
        )
        assert isinstance(outcome, notification_handlers.Delivered)
        await forget(conn, env)
        again = await notification_handlers.deliver(
            command, env, 1, NotificationUnitOfWork(sessions), cast(SmtpMailer, mailer)
        )
        assert isinstance(again, notification_handlers.Duplicate)
        assert mailer.sent == [str(env.id)]
    finally:
        await conn.execute("delete from deliveries where message_id = $1", env.id)
        await conn.close()
