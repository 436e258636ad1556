"""The frameworks' floor (`make bench-floor`, outside CI): what the required
libraries cost per message or request when the code around them does nothing.

Each variant runs in a subprocess of its own (`python -m bench.floor worker
VARIANT`) against the running local stack, and reports its own CPU time
(`time.process_time`: every thread of the process, user + system) from its
first message or request to its last, divided by their number; the HTTP
server's CPU is read from /proc by its client, another process. Variants of
one kind alternate, round after round, and each figure is the median of the
rounds with the spread (min-max) beside it: the machine is shared.

- Kafka, consuming OrderPlaced records (the contract's JSON, CloudEvents
  binary headers, a traceparent) from a 6-partition topic, each run in a
  consumer group of its own from the earliest offset: plain aiokafka (manual
  commits every 200 ms); FastStream's subscriber as point-service declares it
  (group, `AckPolicy.NACK_ON_ERROR`, `DeferredCommits` as parser and
  listener) with a no-op handler taking the contract as its body: without
  middlewares, with the tracing and Prometheus middlewares of
  `messaging.brokers.observed`, and with those and `DeadLetterPolicy` (all
  that point-service installs).
- RabbitMQ, consuming SendNotification commands from a durable priority queue
  (prefetch 10 and ack after the handler, as notification-service): plain
  aio-pika; FastStream no-op, bare / observed / shipped as above.
- The relays' publishing: `outbox_relay.publishers.KafkaPublisher` and
  `RabbitPublisher` on rows from memory (batches of `RELAY_BATCH`), without
  and with a tracer provider (one PRODUCER span per message, as shipped).
- HTTP: FastAPI + uvicorn (as `messaging.serving.serve` configures it),
  POST of an order body validated as `OrderIn`, a no-op handler answering a
  fixed `OrderOut` (201, Location): bare, and with what order-service's
  `create_app` installs (body limit, correlation echo, problem handlers,
  prometheus-fastapi-instrumentator, OpenTelemetry's FastAPI instrumentation).
  The server is pinned to one core and the httpx client (32 connections) to
  the other: requests/s is that of one server process on one core.
- SQL: a transaction of three INSERTs, through an `AsyncSession` on
  `messaging.database.build_engine` (pool_pre_ping, as the services) against
  raw asyncpg on one connection; client CPU, and the PostgreSQL backend's CPU
  read from /proc (the connection's backend pid).

Everything it creates is named `floor_<run>` (a Kafka topic, a RabbitMQ
queue, a table in point's database) and removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import psutil
from fastapi import Header, Response

# Module-level: the handlers' annotations are strings (`from __future__`), which
# FastAPI and FastStream resolve in this module's globals.
from catalogue.contracts.notifications import SendNotification
from catalogue.contracts.orders import OrderPlaced
from order_service.entrypoints.schemas import OrderIn, OrderOut

MESSAGES = 4000
REQUESTS = 3000
WARMUP_REQUESTS = 300
TRANSACTIONS = 2000
RELAY_BATCH = 20
PREFETCH = 10  # notification-service's RABBITMQ_PREFETCH default
HTTP_CLIENTS = 32
SERVICE = "floor-bench"
RESULT = "FLOOR_RESULT "
ATTEMPTS = 6

KAFKA = ("aiokafka", "faststream", "faststream+otel+prom", "faststream shipped")
RABBIT = ("aio-pika", "faststream", "faststream+otel+prom", "faststream shipped")
RELAY_KAFKA = ("relay kafka", "relay kafka+spans")
RELAY_RABBIT = ("relay rabbitmq", "relay rabbitmq+spans")
HTTP = ("fastapi", "fastapi shipped")
SQL = ("asyncpg", "sqlalchemy", "sqlalchemy-core")
GROUPS: dict[str, tuple[str, ...]] = {
    "kafka consume": KAFKA,
    "rabbitmq consume": RABBIT,
    "kafka relay publish": RELAY_KAFKA,
    "rabbitmq relay publish": RELAY_RABBIT,
    "http": HTTP,
    "sql": SQL,
}


@dataclass(frozen=True)
class Stack:
    """Where the components are and what this run named its own things."""

    kafka: str
    amqp_url: str
    rabbitmq: dict[str, str]  # messaging.settings.RabbitMQSettings
    otlp: str
    dsn: str  # point's database, point's user
    database: dict[str, str]
    name: str  # floor_<run>: topic, queue, table

    def args(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def of(cls, text: str) -> Stack:
        return cls(**json.loads(text))


def report(**figures: float | int | str) -> None:
    print(RESULT + json.dumps(figures), flush=True)


# -- the messages ---------------------------------------------------------------
def order_placed() -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """Key, value and headers of an OrderPlaced record as order-relay produces it."""
    from catalogue.contracts.orders import OrderLine, OrderPlaced
    from catalogue.topology import ORDERS
    from messaging.envelope import MessageContext, OutgoingMessage, json_ready

    order_id = uuid.uuid4()
    event = OrderPlaced(
        order_id=order_id,
        customer_id=f"floor-{order_id.hex[:8]}",
        customer_email=f"floor-{order_id.hex[:8]}@example.com",
        currency="EUR",
        total=Decimal("24.00"),
        lines=[OrderLine(sku="SKU-1", quantity=2, unit_price=Decimal("12.00"))],
        placed_at=datetime.now(UTC),
    )
    message = OutgoingMessage(
        event, ORDERS, str(order_id), "order-service", MessageContext(str(uuid.uuid4()))
    )
    headers = {**message.binary_mode_headers(), "traceparent": traceparent()}
    return (
        str(order_id).encode(),
        json.dumps(json_ready(event)).encode(),
        [(k, v.encode()) for k, v in headers.items()],
    )


def send_notification() -> tuple[bytes, dict[str, Any], str]:
    """Body, headers and message id of a SendNotification command."""
    from catalogue.contracts.notifications import NotificationKind, SendNotification
    from catalogue.topology import NOTIFICATION_SEND
    from messaging.envelope import MessageContext, OutgoingMessage, json_ready

    order_id = uuid.uuid4()
    command = SendNotification(
        kind=NotificationKind.ORDER,
        recipient=f"floor-{order_id.hex[:8]}@example.com",
        subject=f"Your order {order_id} was received",
        body=f"Thank you for your order {order_id} of 24.00 EUR.",
    )
    message = OutgoingMessage(
        command, NOTIFICATION_SEND, str(order_id), "order-service", MessageContext(str(order_id))
    )
    headers = {**message.binary_mode_headers(), "traceparent": traceparent()}
    return json.dumps(json_ready(command)).encode(), headers, str(message.id)


def traceparent() -> str:
    return f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"


ORDER_BODY = {
    "customer_id": "floor-customer",
    "customer_email": "floor-customer@example.com",
    "currency": "EUR",
    "items": [{"sku": "SKU-1", "quantity": 2, "unit_price": "12.00"}],
}


# -- worker helpers ---------------------------------------------------------------
def telemetry(stack: Stack, traced: bool) -> Any:
    """Logging as every service sets it up (JSON, INFO); the tracer provider as
    shipped (OTLP to the stack's Jaeger, batched) when traced."""
    from messaging.settings import TelemetrySettings
    from messaging.telemetry import setup_logging, setup_tracing

    settings = TelemetrySettings(otel_service_name=SERVICE, otel_exporter_otlp_endpoint=stack.otlp)
    setup_logging(settings)
    return setup_tracing(settings) if traced else None


class Counted:
    """Counts handled messages; CPU from the first to the last."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.seen = 0
        self.cpu0 = 0.0
        self.done = asyncio.Event()

    def one(self) -> None:
        self.seen += 1
        if self.seen == 1:
            self.cpu0 = time.process_time()
        if self.seen >= self.total:
            self.done.set()

    def per_message_us(self, flushed_cpu: float) -> float:
        return (flushed_cpu - self.cpu0) / (self.total - 1) * 1e6


async def finished(counted: Counted, provider: Any, timeout_s: float = 120) -> float:
    """Waits for the last message; CPU per message including the span export
    of what was handled (the tracer provider's flush)."""
    await asyncio.wait_for(counted.done.wait(), timeout_s)
    if provider is not None:
        await asyncio.to_thread(provider.force_flush)
    return counted.per_message_us(time.process_time())


# -- Kafka consumers ------------------------------------------------------------
async def kafka_worker(variant: str, stack: Stack, n: int) -> None:
    group = f"{stack.name}-{uuid.uuid4().hex[:6]}"
    counted = Counted(n)
    if variant == "aiokafka":
        await plain_kafka(stack, group, counted)
        return
    from faststream import AckPolicy

    from messaging import brokers
    from messaging.consumer import DeadLetterPolicy
    from messaging.offsets import DeferredCommits
    from messaging.settings import KafkaSettings
    from messaging.unavailable import unavailable

    provider = telemetry(stack, traced=variant != "faststream")
    logger = logging.getLogger("floor.faststream")
    settings = KafkaSettings(kafka_bootstrap_servers=stack.kafka)
    if variant == "faststream":
        from faststream.kafka import KafkaBroker

        from messaging.consumer import parse_kafka_record

        broker = KafkaBroker(
            stack.kafka,
            acks="all",
            enable_idempotence=True,
            parser=parse_kafka_record,
            logger=logger,
            log_level=logging.DEBUG,
        )
    else:
        broker = brokers.kafka_broker(settings, SERVICE, logger, provider)
    if variant == "faststream shipped":

        async def sink(*_: object) -> None:
            return None

        broker.add_middleware(DeadLetterPolicy(source=stack.name, sink=sink, transient=unavailable))
    offsets = DeferredCommits()
    subscriber = broker.subscriber(
        stack.name,
        group_id=group,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        parser=offsets.parse,
        listener=offsets,
        no_reply=True,
    )

    @subscriber
    async def handle(body: OrderPlaced) -> None:
        counted.one()

    await broker.start()
    try:
        per_message = await finished(counted, provider)
    finally:
        await offsets.close()
        await broker.stop()
    report(us=per_message, n=n)


async def plain_kafka(stack: Stack, group: str, counted: Counted) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        stack.name,
        bootstrap_servers=stack.kafka,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    offsets: dict[TopicPartition, int] = {}

    async def commit_every() -> None:
        while True:
            await asyncio.sleep(0.2)
            if offsets:
                pending = dict(offsets)
                offsets.clear()
                await consumer.commit(pending)

    committer = asyncio.create_task(commit_every())

    async def consume() -> None:
        async for record in consumer:
            offsets[TopicPartition(record.topic, record.partition)] = record.offset + 1
            counted.one()
            if counted.done.is_set():
                return

    consuming = asyncio.create_task(consume())
    try:
        per_message = await finished(counted, None)
    finally:
        consuming.cancel()
        committer.cancel()
        await consumer.stop()
    report(us=per_message, n=counted.total)


# -- RabbitMQ consumers -----------------------------------------------------------
async def rabbit_worker(variant: str, stack: Stack, n: int) -> None:
    counted = Counted(n)
    if variant == "aio-pika":
        await plain_rabbit(stack, counted)
        return
    from faststream import AckPolicy
    from faststream.rabbit import Channel, RabbitBroker, RabbitQueue

    from messaging import brokers
    from messaging.consumer import DeadLetterPolicy, parse_rabbit_message
    from messaging.settings import RabbitMQSettings
    from messaging.unavailable import unavailable

    provider = telemetry(stack, traced=variant != "faststream")
    logger = logging.getLogger("floor.faststream")
    if variant == "faststream":
        broker = RabbitBroker(
            stack.amqp_url, parser=parse_rabbit_message, logger=logger, log_level=logging.DEBUG
        )
    else:
        broker = brokers.rabbit_broker(
            RabbitMQSettings.model_validate(stack.rabbitmq), SERVICE, logger, provider
        )
    if variant == "faststream shipped":

        async def sink(*_: object) -> None:
            return None

        broker.add_middleware(DeadLetterPolicy(source=stack.name, sink=sink, transient=unavailable))
    subscriber = broker.subscriber(
        RabbitQueue(stack.name, durable=True, declare=False),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        no_reply=True,
    )
    subscriber.channel = Channel(prefetch_count=PREFETCH)

    @subscriber
    async def handle(body: SendNotification) -> None:
        counted.one()

    await broker.start()
    try:
        per_message = await finished(counted, provider)
    finally:
        await broker.stop()
    report(us=per_message, n=n)


async def plain_rabbit(stack: Stack, counted: Counted) -> None:
    import aio_pika

    connection = await aio_pika.connect_robust(stack.amqp_url)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        queue = await channel.get_queue(stack.name, ensure=True)

        async def handle(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()
            counted.one()

        await queue.consume(handle)
        per_message = await finished(counted, None)
    finally:
        await connection.close()
    report(us=per_message, n=counted.total)


# -- the relays' publishers ---------------------------------------------------------
def outbox_rows(kind: str, destination: str, routing_key: str | None, n: int) -> list[Any]:
    from catalogue.contracts.notifications import NotificationKind, SendNotification
    from catalogue.contracts.orders import OrderLine, OrderPlaced
    from catalogue.topology import NOTIFICATION_SEND, ORDERS
    from messaging.envelope import Contract, MessageContext, OutgoingMessage, json_ready
    from messaging.outbox.headers import OutboxHeaders
    from outbox_relay.store import OutboxRow

    rows = []
    for i in range(n):
        key = uuid.uuid4()
        data: Contract
        if kind == "kafka":
            data = OrderPlaced(
                order_id=key,
                customer_id="floor-customer",
                customer_email="floor-customer@example.com",
                currency="EUR",
                total=Decimal("24.00"),
                lines=[OrderLine(sku="SKU-1", quantity=2, unit_price=Decimal("12.00"))],
                placed_at=datetime.now(UTC),
            )
            message = OutgoingMessage(data, ORDERS, str(key), SERVICE, MessageContext(str(key)))
        else:
            data = SendNotification(
                kind=NotificationKind.ORDER,
                recipient="floor-customer@example.com",
                subject=f"Your order {key} was received",
                body=f"Thank you for your order {key} of 24.00 EUR.",
            )
            message = OutgoingMessage(
                data, NOTIFICATION_SEND, str(key), SERVICE, MessageContext(str(key)), priority=5
            )
        headers: OutboxHeaders = {
            "ce": message.cloudevent_attributes(),
            "binary": message.binary_mode_headers(),
            "trace": {"traceparent": traceparent()},
        }
        rows.append(
            OutboxRow(
                id=i,
                message_id=message.id,
                message_type=data.TYPE,
                destination_kind=kind,
                destination=destination,
                routing_key=routing_key,
                ordering_key=str(key),
                payload=json.dumps(json_ready(data)),
                headers=headers,
                priority=message.priority,
                best_effort=False,
                attempts=0,
                created_at=datetime.now(UTC),
            )
        )
    return rows


async def relay_worker(variant: str, stack: Stack, n: int) -> None:
    from outbox_relay.publishers import KafkaPublisher, Outcome, Publisher, RabbitPublisher

    provider = telemetry(stack, traced=variant.endswith("+spans"))
    publisher: Publisher
    if variant.startswith("relay kafka"):
        rows = outbox_rows("kafka", stack.name, None, n + RELAY_BATCH)
        publisher = KafkaPublisher({"bootstrap_servers": stack.kafka}, 10.0, linger_ms=2)
    else:
        # The default exchange, routed to the bench's queue (the relay publishes
        # to `commands`; the exchange is the same kind of lookup).
        rows = outbox_rows("rabbitmq", "", stack.name, n + RELAY_BATCH)
        publisher = RabbitPublisher(stack.amqp_url, 10.0)
    try:
        # The first batch connects; it is not counted.
        await publisher.publish(rows[:RELAY_BATCH])
        cpu0 = time.process_time()
        sent = 0
        for start in range(RELAY_BATCH, len(rows), RELAY_BATCH):
            results = await publisher.publish(rows[start : start + RELAY_BATCH])
            sent += sum(r.outcome is Outcome.SENT for r in results)
        if provider is not None:
            await asyncio.to_thread(provider.force_flush)
        cpu = time.process_time() - cpu0
    finally:
        await publisher.close()
    if sent != n:
        raise RuntimeError(f"{variant}: {sent} of {n} messages sent")
    report(us=cpu / n * 1e6, n=n)


# -- HTTP -------------------------------------------------------------------------
def http_app(variant: str, stack: Stack) -> Any:
    from fastapi import FastAPI

    fixed = OrderOut(
        id=uuid.uuid4(),
        customer_id="floor-customer",
        customer_email="floor-customer@example.com",
        currency="EUR",
        items=[{"sku": "SKU-1", "quantity": 2, "unit_price": Decimal("12.00")}],
        total=Decimal("24.00"),
        status="placed",
        created_at=datetime.now(UTC),
        cancelled_at=None,
    )

    async def place_order(
        body: OrderIn,
        response: Response,
        idempotency_key: str | None = Header(
            default=None, alias="Idempotency-Key", min_length=1, max_length=255
        ),
    ) -> OrderOut:
        response.headers["Location"] = f"/orders/{fixed.id}"
        return fixed

    async def live() -> dict[str, str]:
        return {"status": "ok"}

    shipped = variant == "fastapi shipped"
    if shipped:
        from order_service.entrypoints.problems import ERRORS

        app = FastAPI(title="floor", responses=ERRORS)
    else:
        app = FastAPI(title="floor")
    app.post("/orders", status_code=201, response_model=OrderOut)(place_order)
    app.get("/health/live", include_in_schema=False)(live)
    if shipped:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from prometheus_fastapi_instrumentator import Instrumentator

        from messaging.serving import LimitRequestBody
        from order_service.entrypoints.http import EchoCorrelationId
        from order_service.entrypoints.problems import answer_errors_as_problems

        app.add_middleware(LimitRequestBody, max_bytes=1024 * 1024)
        app.add_middleware(EchoCorrelationId)
        answer_errors_as_problems(app)
        Instrumentator(excluded_handlers=["/health/.*", "/metrics"]).instrument(app).expose(
            app, include_in_schema=False
        )
        FastAPIInstrumentor.instrument_app(app, excluded_urls="health/.*,metrics")
    return app


def http_server(variant: str, stack: Stack, port: int) -> None:
    import uvicorn

    os.sched_setaffinity(0, {0})
    provider = telemetry(stack, traced=variant == "fastapi shipped")
    app = http_app(variant, stack)
    # As messaging.serving.serve configures it.
    uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=20,
        )
    ).run()
    if provider is not None:
        provider.shutdown()


async def load(port: int, body: bytes, total: int) -> None:
    """`total` POSTs over HTTP_CLIENTS keep-alive connections, each waiting for
    its answer before the next request. Raw HTTP/1.1 on asyncio streams: httpx
    spent about 5 ms of CPU per request here, 3x the server's, so it could not
    load one server core from the other."""
    request = (
        b"POST /orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )

    async def connection(count: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(count):
                writer.write(request)
                status = await reader.readline()
                if not status.startswith(b"HTTP/1.1 201"):
                    raise RuntimeError(f"POST /orders → {status!r}")
                length = 0
                while (line := await reader.readline()) != b"\r\n":
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
        finally:
            writer.close()

    async with asyncio.TaskGroup() as clients:
        for i in range(HTTP_CLIENTS):
            clients.create_task(connection(total // HTTP_CLIENTS + (i < total % HTTP_CLIENTS)))


async def http_client(server_pid: int, port: int, n: int) -> None:
    import httpx

    os.sched_setaffinity(0, {1})
    server = psutil.Process(server_pid)
    base = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(max_connections=HTTP_CLIENTS, max_keepalive_connections=HTTP_CLIENTS)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        for _ in range(200):
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/health/live")).status_code == 200:
                    break
            await asyncio.sleep(0.05)
        body = json.dumps(ORDER_BODY).encode()
        headers = {"content-type": "application/json"}

        # Checked through httpx first: 201 and the fixed order back.
        answer = await client.post("/orders", content=body, headers=headers)
        if answer.status_code != 201 or answer.json()["customer_id"] != "floor-customer":
            raise RuntimeError(f"POST /orders → {answer.status_code}: {answer.text[:200]}")
    await load(port, body, WARMUP_REQUESTS)
    before, wall0, own0 = server.cpu_times(), time.monotonic(), time.process_time()
    await load(port, body, n)
    after, wall, own = server.cpu_times(), time.monotonic() - wall0, time.process_time() - own0
    server_cpu = (after.user + after.system) - (before.user + before.system)
    report(
        us=server_cpu / n * 1e6,
        n=n,
        rps=n / wall,
        server_busy=server_cpu / wall,
        client_us=own / n * 1e6,
    )


def http_run(variant: str, stack: Stack, n: int) -> dict[str, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.floor", "worker", "server", variant, stack.args(), str(port)],
        stdout=subprocess.DEVNULL,
    )
    try:
        return run_worker(["client", str(server.pid), str(port), str(n)])
    finally:
        server.terminate()
        server.wait(30)


# -- SQL ----------------------------------------------------------------------------
async def sql_worker(variant: str, stack: Stack, n: int) -> None:
    if variant == "asyncpg":
        import asyncpg

        connection = await asyncpg.connect(stack.dsn)
        backend = psutil.Process(await connection.fetchval("select pg_backend_pid()"))
        sql = f"insert into {stack.name} (id, kind, payload) values ($1, $2, $3)"

        async def transaction() -> None:
            async with connection.transaction():
                for kind in ("inbox", "ledger", "outbox"):
                    await connection.execute(sql, uuid.uuid4(), kind, PAYLOAD)

        close: Callable[[], Coroutine[Any, Any, None]] = connection.close
    else:
        from sqlalchemy import Column, MetaData, Table, Text, insert, text
        from sqlalchemy.dialects.postgresql import UUID
        from sqlalchemy.ext.asyncio import async_sessionmaker

        from messaging.database import build_engine
        from messaging.settings import DatabaseSettings

        table = Table(
            stack.name,
            MetaData(),
            Column("id", UUID, primary_key=True),
            Column("kind", Text),
            Column("payload", Text),
        )
        engine = build_engine(DatabaseSettings.model_validate(stack.database), SERVICE)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with sessions() as session:
            backend = psutil.Process(
                (await session.execute(text("select pg_backend_pid()"))).scalar_one()
            )

        async def in_session() -> None:
            async with sessions() as session, session.begin():
                for kind in ("inbox", "ledger", "outbox"):
                    await session.execute(
                        insert(table).values(id=uuid.uuid4(), kind=kind, payload=PAYLOAD)
                    )

        async def on_connection() -> None:
            # SQLAlchemy Core on an AsyncConnection: the same statements
            # without the ORM Session around them.
            async with engine.begin() as connection:
                for kind in ("inbox", "ledger", "outbox"):
                    await connection.execute(
                        insert(table).values(id=uuid.uuid4(), kind=kind, payload=PAYLOAD)
                    )

        transaction = on_connection if variant == "sqlalchemy-core" else in_session

        close = engine.dispose
    try:
        for _ in range(100):
            await transaction()
        pg0, cpu0 = sum(backend.cpu_times()[:2]), time.process_time()
        for _ in range(n):
            await transaction()
        cpu, pg = time.process_time() - cpu0, sum(backend.cpu_times()[:2]) - pg0
    finally:
        await close()
    report(us=cpu / n * 1e6, n=n, postgres_us=pg / n * 1e6)


PAYLOAD = json.dumps(ORDER_BODY)


# -- the run ----------------------------------------------------------------------
def run_worker(args: list[str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.floor", "worker", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    for line in done.stdout.splitlines():
        if line.startswith(RESULT):
            figures: dict[str, float] = json.loads(line[len(RESULT) :])
            return figures
    raise RuntimeError(f"worker {args[:2]} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def stack_of(run: str) -> Stack:
    from tests.e2e.targets import LocalTarget

    target = LocalTarget()
    s, creds = target.stack.s, target.stack.creds
    admin = creds.rabbitmq_admin
    point = creds.postgres["point"]
    return Stack(
        kafka=target.endpoints.kafka_bootstrap,
        amqp_url=f"amqp://{quote(admin.user, safe='')}:{quote(admin.password, safe='')}"
        f"@{s.host}:{s.rabbitmq_port}/%2F",
        rabbitmq={
            "rabbitmq_host": s.host,
            "rabbitmq_port": str(s.rabbitmq_port),
            "rabbitmq_user": admin.user,
            "rabbitmq_password": admin.password,
        },
        otlp=f"http://{s.host}:{s.jaeger_otlp_grpc_port}",
        dsn=target.endpoints.databases["point"],
        database={
            "database_host": s.host,
            "database_port": str(s.postgres_port),
            "database_name": "point",
            "database_user": "point",
            "database_password": point.password,
        },
        name=f"floor_{run}",
    )


@contextlib.asynccontextmanager
async def resources(stack: Stack) -> AsyncIterator[None]:
    """The topic, queue and table of the run; deleted afterwards."""
    import aio_pika
    import asyncpg
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka)
    await admin.start()
    connection = await aio_pika.connect(stack.amqp_url)
    database = await asyncpg.connect(stack.dsn)
    try:
        await admin.create_topics([NewTopic(stack.name, num_partitions=6, replication_factor=1)])
        channel = await connection.channel()
        await channel.declare_queue(stack.name, durable=True, arguments={"x-max-priority": 10})
        await database.execute(
            f"create table {stack.name} (id uuid primary key, kind text not null, "
            "payload text not null, created_at timestamptz not null default now())"
        )
        yield
    finally:
        await admin.close()
        await connection.close()
        await database.close()
        await remove(stack)


async def remove(stack: Stack) -> None:
    """The run's topic, queue and table, each through a new connection: the
    run's own may have been closed by a component's restart."""
    import aio_pika
    import asyncpg
    from aiokafka.admin import AIOKafkaAdminClient

    for attempt in range(ATTEMPTS):
        try:
            admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka)
            await admin.start()
            try:
                if stack.name in await admin.list_topics():
                    await admin.delete_topics([stack.name])
            finally:
                await admin.close()
            connection = await aio_pika.connect(stack.amqp_url)
            try:
                await (await connection.channel()).queue_delete(stack.name)
            finally:
                await connection.close()
            database = await asyncpg.connect(stack.dsn)
            try:
                await database.execute(f"drop table if exists {stack.name}")
            finally:
                await database.close()
        except Exception as exc:  # noqa: BLE001 - any failure: try again, then say what is left
            print(f"removing {stack.name} failed ({exc!r}); attempt {attempt + 1}", flush=True)
            await asyncio.sleep(15)
        else:
            return
    print(f"left behind: topic, queue and table {stack.name}; remove them by hand", flush=True)


async def fill_topic(stack: Stack, n: int) -> None:
    from tests.support import kafka

    producer = kafka.durable_producer(stack.kafka, linger_ms=5)
    await producer.start()
    try:
        futures = []
        for _ in range(n):
            key, value, headers = order_placed()
            futures.append(await producer.send(stack.name, value=value, key=key, headers=headers))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def fill_queue(stack: Stack, n: int) -> None:
    import aio_pika

    connection = await aio_pika.connect(stack.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.queue_delete(stack.name)  # whatever a relay variant left
        await channel.declare_queue(stack.name, durable=True, arguments={"x-max-priority": 10})
        for start in range(0, n, 500):
            pending = []
            for _ in range(min(500, n - start)):
                body, headers, message_id = send_notification()
                pending.append(
                    channel.default_exchange.publish(
                        aio_pika.Message(
                            body,
                            headers=headers,
                            content_type="application/json",
                            message_id=message_id,
                            priority=5,
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=stack.name,
                    )
                )
            await asyncio.gather(*pending)
    finally:
        await connection.close()


async def empty_queue(stack: Stack) -> None:
    import aio_pika

    connection = await aio_pika.connect(stack.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(
            stack.name, durable=True, arguments={"x-max-priority": 10}
        )
        await queue.purge()
    finally:
        await connection.close()


async def one_run(stack: Stack, group: str, variant: str, n: dict[str, int]) -> dict[str, float]:
    """One variant's run, again if it failed (the stack is shared: another
    session's fault tests may stop and restart its components)."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await one_attempt(stack, group, variant, n)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            if attempt == ATTEMPTS:
                raise
            print(f"{group} {variant} failed, again in 15 s: {str(exc)[-200:]}", flush=True)
            await asyncio.sleep(15)
    raise AssertionError("unreachable")


async def one_attempt(
    stack: Stack, group: str, variant: str, n: dict[str, int]
) -> dict[str, float]:
    count = n["messages"]
    if group == "rabbitmq consume":
        await fill_queue(stack, count)
        figures = run_worker(["rabbit", variant, stack.args(), str(count)])
    elif group == "kafka consume":
        figures = run_worker(["kafka", variant, stack.args(), str(count)])
    elif group.endswith("relay publish"):
        figures = run_worker(["relay", variant, stack.args(), str(count)])
        await empty_queue(stack)
    elif group == "http":
        figures = await asyncio.to_thread(http_run, variant, stack, n["requests"])
    else:
        figures = run_worker(["sql", variant, stack.args(), str(n["transactions"])])
    return figures


async def measure(
    stack: Stack, rounds: int, n: dict[str, int], only: list[str]
) -> dict[str, list[dict[str, float]]]:
    results: dict[str, list[dict[str, float]]] = {}
    if not only or "kafka consume" in only:
        await fill_topic(stack, n["messages"])
    for r in range(rounds):
        for group, variants in GROUPS.items():
            if only and group not in only:
                continue
            # Alternate: each round starts one variant further along.
            order = variants[r % len(variants) :] + variants[: r % len(variants)]
            for variant in order:
                figures = await one_run(stack, group, variant, n)
                results.setdefault(
                    variant
                    if group != "kafka consume" and group != "rabbitmq consume"
                    else f"{group}: {variant}",
                    [],
                ).append(figures)
                print(f"round {r + 1} {group:22} {variant:22} {json.dumps(figures)}", flush=True)
    return results


def median(values: list[float]) -> str:
    m = statistics.median(values)
    return f"{m:.0f} ({min(values):.0f}-{max(values):.0f})"


def summarize(results: dict[str, list[dict[str, float]]]) -> None:
    print("\n| variant | µs CPU per message / request (median, min-max) | other |")
    print("|---|---|---|")
    for variant, runs in results.items():
        other = []
        if "postgres_us" in runs[0]:
            other.append(f"PostgreSQL backend {median([r['postgres_us'] for r in runs])} µs")
        if "rps" in runs[0]:
            other.append(f"{median([r['rps'] for r in runs])} req/s")
            other.append(f"server busy {statistics.median([r['server_busy'] for r in runs]):.2f}")
            other.append(f"client {median([r['client_us'] for r in runs])} µs")
        print(f"| {variant} | {median([r['us'] for r in runs])} | {'; '.join(other)} |")

    def ms(variant: str, key: str = "us") -> float:
        return statistics.median([r[key] for r in results[variant]]) / 1000

    http = ms("fastapi shipped")
    parts = {
        "order-service: 1 POST": http,
        "order-service: 1 transaction": ms("sqlalchemy"),
        "order-relay: 1 Kafka produce + 1 RabbitMQ publish": ms("relay kafka+spans")
        + ms("relay rabbitmq+spans"),
        "point-service: 1 Kafka consume": ms("kafka consume: faststream shipped"),
        "point-service: 1 transaction": ms("sqlalchemy"),
        "point-relay: 1 Kafka produce + 1 RabbitMQ publish": ms("relay kafka+spans")
        + ms("relay rabbitmq+spans"),
        "notification-service: 2 RabbitMQ consumes": 2 * ms("rabbitmq consume: faststream shipped"),
        "notification-service: 2 transactions": 2 * ms("sqlalchemy"),
        "PostgreSQL: 4 transactions' backends": 4 * ms("sqlalchemy", "postgres_us"),
    }
    print("\n| one order's path | floor, ms CPU |")
    print("|---|---|")
    for part, value in parts.items():
        print(f"| {part} | {value:.2f} |")
    total = sum(parts.values())
    print(f"| **sum** | **{total:.2f}** |")
    print(
        f"\nfloor_ms_per_order={total:.2f} api_floor_rps_2_cores={2000 / http:.0f} "
        f"api_floor_rps_1_core={1000 / http:.0f}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=MESSAGES)
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--transactions", type=int, default=TRANSACTIONS)
    parser.add_argument("--only", action="append", default=[], choices=list(GROUPS))
    args = parser.parse_args()
    stack = stack_of(uuid.uuid4().hex[:8])
    n = {"messages": args.messages, "requests": args.requests, "transactions": args.transactions}
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; run {stack.name}; {n}", flush=True)
    async with resources(stack):
        results = await measure(stack, args.rounds, n, args.only)
    if not args.only:
        summarize(results)


def worker() -> None:
    kind, *rest = sys.argv[2:]
    if kind == "server":
        http_server(rest[0], Stack.of(rest[1]), int(rest[2]))
        return
    if kind == "client":
        asyncio.run(http_client(int(rest[0]), int(rest[1]), int(rest[2])))
        return
    variant, stack, count = rest[0], Stack.of(rest[1]), int(rest[2])
    workers = {"kafka": kafka_worker, "rabbit": rabbit_worker, "relay": relay_worker}
    workers["sql"] = sql_worker
    asyncio.run(workers[kind](variant, stack, count))


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker()
    else:
        asyncio.run(main())
