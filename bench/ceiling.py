"""The ceiling of the system benchmark: the minimal work of one order, done by
raw clients on the same components the system uses.

Per order, with the system's guarantees (durable, confirmed, committed) and
nothing else:

1. order's transaction: the order row and its two outgoing messages (an
   OrderPlaced event for Kafka, a SendNotification command for RabbitMQ) as
   outbox rows, one commit;
2. order's relay: claims pending rows (``FOR UPDATE SKIP LOCKED``, batches of
   up to 1000, two lanes), produces the events to Kafka (acks=all,
   idempotent, keyed by order id) and publishes the commands to RabbitMQ
   (persistent, publisher confirms), marks the rows sent: one transaction per
   batch;
3. point's consumer: a consumer group on the topic, offsets committed after
   each fetched batch; per record one transaction: inbox row (on conflict do
   nothing), ledger row, balance upsert, and the points mail command as an
   outbox row;
4. point's relay: publishes those commands to RabbitMQ with confirms, marks
   them sent;
5. notification's consumer: both commands from a durable queue (manual ack,
   a prefetch window); per command one transaction (inbox row and delivery
   record) around an SMTP delivery over a reused connection, then the ack.

Timed from the first order's transaction until every order's two mails have
been accepted by the SMTP server (and acked). Everything lives in
bench-owned places that are created before and removed after the run, even
when it fails: a schema ``ceiling_<run>`` in each service's database, a
6-partition topic and a durable queue named ``ceiling-<run>``, the mails it
sent (deleted from the mail catcher by search) and the Kafka consumer group.

What the ceiling leaves out, on purpose: HTTP and request validation, order
lines and idempotency keys, CloudEvents headers beyond id and type, tracing
and metrics, the relay's per-key ordering check (each order's two rows go to
different destinations, and the ceiling places no second event of one order)
and its retry bookkeeping. notification-service's deduplication is the
same as here (since issue 14 it takes no advisory lock: the inbox row, held
uncommitted during the SMTP exchange, keeps a redelivered copy from being
sent alongside: its insert waits for the first transaction, then finds the
row), but in two statements where this is one: its delivery insert, on
conflict do nothing, also finds an id whose inbox row was purged. Each
transaction is one SQL statement (data-modifying CTEs) where it can be: one
round trip and one commit, the cheapest way to the same atomic effects. The
relays poll every 5 ms when they find nothing instead of listening for a
trigger's NOTIFY, which under load they never do.

One process, one event loop, all five stages at once (SMTP in a small thread
pool, as smtplib blocks). That is still a fair ceiling on this 2-core
machine: the system runs six Python processes on the same two cores beside
PostgreSQL, Kafka, RabbitMQ and Mailpit, so its Python work never has a core
of its own either; the components here are the system's components and get
the other core. If this process saturates its core (``cpu_s`` close to the
wall time), the ceiling is bounded by Python's CPU per order, and
``cpu_s / orders`` is the figure to hold against the system's CPU per order;
a second process would only move the limit to the shared cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import smtplib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from email.utils import formatdate
from typing import Any

import aio_pika
import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.protocol.admin import DeleteGroupsRequest

from tests.e2e.targets import Endpoints, target_from_env
from tests.support import kafka

PARTITIONS = 6
WRITERS = 16  # concurrent order transactions, one connection each (as an API's pool)
RELAY_BATCH = 1000  # as the system's relay
RELAY_LANES = 2  # as the system's relay: claim, publish and mark overlap across lanes
RELAY_IDLE_S = 0.005
POINT_CONNECTIONS = 8  # point's consumer: transactions in flight over one fetched batch
PREFETCH = 64  # notification's consumer: unacked commands in flight
# Each reused for every mail, one per thread; 16 beat 8 here (149 against
# 125-135 orders/s for 1000 orders, two runs each).
SMTP_CONNECTIONS = 16
SENDER = "orders@example.com"

ORDER_TABLES = """
create table orders (
    id uuid primary key,
    customer_id text not null,
    customer_email text not null,
    currency text not null,
    total numeric(14, 2) not null,
    status text not null,
    created_at timestamptz not null default now()
);
"""
# The system's outbox, minus the columns only its relay's retries and tracing use.
OUTBOX_TABLE = """
create table outbox (
    id bigint generated always as identity primary key,
    message_id uuid not null unique,
    message_type text not null,
    destination_kind text not null,
    destination text not null,
    ordering_key text not null,
    payload jsonb not null,
    state text not null default 'pending',
    created_at timestamptz not null default now(),
    finished_at timestamptz
);
create index outbox_pending on outbox (id) where state = 'pending';
"""
INBOX_TABLE = """
create table inbox (
    consumer text not null,
    message_id uuid not null,
    message_type text not null,
    received_at timestamptz not null default now(),
    primary key (consumer, message_id)
);
"""
POINT_TABLES = """
create table point_balances (
    customer_id text primary key,
    balance integer not null,
    updated_at timestamptz not null default now()
);
create table point_ledger (
    id bigint generated always as identity primary key,
    customer_id text not null,
    order_id uuid,
    kind text not null,
    points integer not null,
    message_id uuid not null,
    created_at timestamptz not null default now()
);
create unique index point_ledger_one_per_order on point_ledger (order_id, kind)
    where order_id is not null;
"""
NOTIFICATION_TABLES = """
create table deliveries (
    message_id uuid primary key,
    kind text not null,
    recipient text not null,
    subject text not null,
    attempts integer not null,
    delivered_at timestamptz not null default now()
);
"""

PLACE_ORDER = """
with placed as (
    insert into orders (id, customer_id, customer_email, currency, total, status)
    values ($1, $2, $3, 'EUR', $4, 'placed')
)
insert into outbox
    (message_id, message_type, destination_kind, destination, ordering_key, payload)
values
    ($5, 'order.placed', 'kafka', $6, $7, $8::jsonb),
    ($9, 'notification.send', 'rabbitmq', $10, $7, $11::jsonb)
"""
CLAIM = """
select id, message_id, message_type, destination_kind, destination, ordering_key, payload
from outbox where state = 'pending' order by id limit $1
for update skip locked
"""
MARK_SENT = "update outbox set state = 'sent', finished_at = now() where id = any($1::bigint[])"
# Data-modifying CTEs all run, and all see `first`: a duplicate event (no
# inbox row inserted) grants nothing and commands no mail.
GRANT_POINTS = """
with first as (
    insert into inbox (consumer, message_id, message_type)
    values ('point.grant', $1, 'order.placed')
    on conflict do nothing
    returning message_id
), ledger as (
    insert into point_ledger (customer_id, order_id, kind, points, message_id)
    select $2, $3, 'grant', $4, message_id from first
), balance as (
    insert into point_balances (customer_id, balance)
    select $2, $4 from first
    on conflict (customer_id) do update
        set balance = point_balances.balance + excluded.balance, updated_at = now()
)
insert into outbox
    (message_id, message_type, destination_kind, destination, ordering_key, payload)
select $5, 'notification.send', 'rabbitmq', $6, $2, $7::jsonb from first
"""
RECORD_DELIVERY = """
with first as (
    insert into inbox (consumer, message_id, message_type)
    values ('notification.send', $1, 'notification.send')
    on conflict do nothing
    returning message_id
)
insert into deliveries (message_id, kind, recipient, subject, attempts)
select message_id, $2, $3, $4, 1 from first
returning message_id
"""


@dataclass(frozen=True)
class CeilingResult:
    orders: int
    wall_s: float
    # CPU time (user + system) of this process over the timed window, every
    # thread included: the raw clients' whole cost per order.
    cpu_s: float

    @property
    def orders_per_s(self) -> float:
        return self.orders / self.wall_s


@dataclass
class Progress:
    """Counts per stage: what the run waits for, and the diagnosis when it stalls."""

    orders: int
    placed: int = 0
    relayed_order: int = 0
    granted: int = 0
    relayed_point: int = 0
    mailed: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def mail_sent(self) -> None:
        self.mailed += 1
        if self.mailed >= 2 * self.orders:
            self.done.set()

    def __str__(self) -> str:
        return (
            f"placed {self.placed}, order rows relayed {self.relayed_order}, "
            f"granted {self.granted}, point rows relayed {self.relayed_point}, "
            f"mailed {self.mailed} of {2 * self.orders}"
        )


def address(host_port: str, what: str) -> tuple[str, int]:
    if not host_port:
        raise RuntimeError(
            f"the target gives no {what} address (Endpoints); for kind, set "
            "E2E_RABBITMQ_AMQP and E2E_MAIL_SMTP to host:port forwards"
        )
    host, _, port = host_port.rpartition(":")
    return host, int(port)


class SmtpConnections:
    """A fixed set of SMTP connections, opened once and reused for every mail:
    smtplib blocks, so each exchange runs on a thread of a pool as large as the
    set, on whichever connection is free."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        self.threads = ThreadPoolExecutor(max_workers=size, thread_name_prefix="ceiling-smtp")
        self.idle: asyncio.Queue[smtplib.SMTP] = asyncio.Queue()
        self.opened: list[smtplib.SMTP] = []

    def _open(self) -> smtplib.SMTP:
        connection = smtplib.SMTP(self.host, self.port, timeout=10)
        connection.ehlo()
        return connection

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(self.size):
            connection = await loop.run_in_executor(self.threads, self._open)
            self.opened.append(connection)
            self.idle.put_nowait(connection)

    def _send(self, connection: smtplib.SMTP, message_id: str, command: dict[str, str]) -> None:
        # The headers notification-service writes, put together by hand: the
        # email package's EmailMessage, which the service uses, costs about
        # 2 ms of CPU per mail on this machine (header parsing and folding),
        # a cost of that library, not of the work. Every value here is ASCII
        # on one line, so nothing needs encoding or folding.
        mail = (
            f"From: {SENDER}\r\n"
            f"To: {command['recipient']}\r\n"
            f"Subject: {command['subject']}\r\n"
            f"Date: {formatdate(localtime=False)}\r\n"
            f"Message-ID: <{message_id}@notifications.local>\r\n"
            f"X-Notification-Id: {message_id}\r\n"
            f"X-Notification-Kind: {command['kind']}\r\n"
            "MIME-Version: 1.0\r\n"
            'Content-Type: text/plain; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: 7bit\r\n"
            "\r\n"
            f"{command['body']}\r\n"
        ).encode()
        # Raises unless the server accepted the mail (250); dot-stuffs the data.
        try:
            connection.sendmail(SENDER, [command["recipient"]], mail)
        except smtplib.SMTPServerDisconnected:
            # A server may close a connection it finds idle: open it again,
            # once, as any client that keeps connections does.
            connection.connect(self.host, self.port)
            connection.ehlo()
            connection.sendmail(SENDER, [command["recipient"]], mail)

    async def send(self, message_id: str, command: dict[str, str]) -> None:
        connection = await self.idle.get()
        try:
            await asyncio.get_running_loop().run_in_executor(
                self.threads, self._send, connection, message_id, command
            )
        finally:
            self.idle.put_nowait(connection)

    async def close(self) -> None:
        def quit_all() -> None:
            for connection in self.opened:
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    connection.quit()

        await asyncio.get_running_loop().run_in_executor(self.threads, quit_all)
        self.threads.shutdown(wait=True)


async def relay(
    pool: asyncpg.Pool,
    producer: AIOKafkaProducer | None,
    channel: aio_pika.abc.AbstractChannel,
    counted: Callable[[int], None],
) -> None:
    """One lane of a relay: claim, publish, mark sent, one transaction per
    batch, until cancelled. Kafka records and RabbitMQ confirms of a batch are
    awaited together, so both brokers' round trips overlap."""
    exchange = channel.default_exchange
    while True:
        async with pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(CLAIM, RELAY_BATCH)
            if rows:
                pending: list[Awaitable[Any]] = []
                for row in rows:
                    message_id = str(row["message_id"])
                    body = row["payload"].encode()
                    if row["destination_kind"] == "kafka":
                        assert producer is not None
                        pending.append(
                            await producer.send(
                                row["destination"],
                                value=body,
                                key=row["ordering_key"].encode(),
                                headers=[
                                    ("ce_id", message_id.encode()),
                                    ("ce_type", row["message_type"].encode()),
                                ],
                            )
                        )
                    else:
                        pending.append(
                            exchange.publish(
                                aio_pika.Message(
                                    body,
                                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                    message_id=message_id,
                                    type=row["message_type"],
                                ),
                                routing_key=row["destination"],
                            )
                        )
                await asyncio.gather(*pending)
                await connection.execute(MARK_SENT, [row["id"] for row in rows])
        if rows:
            counted(len(rows))
        else:
            await asyncio.sleep(RELAY_IDLE_S)


async def grant_points(
    consumer: AIOKafkaConsumer, pool: asyncpg.Pool, queue: str, progress: Progress
) -> None:
    """Point's consumer: a fetched batch's records in concurrent transactions
    (as many as the pool has connections), then its offsets committed."""

    async def grant(value: bytes, message_id: bytes) -> None:
        event = orjson.loads(value)
        command = orjson.dumps(
            {
                "kind": "points",
                "recipient": event["customer_email"],
                "subject": f"You earned {event['points']} points",
                "body": f"Order {event['order_id']} earned you {event['points']} points.",
            }
        ).decode()
        await pool.execute(
            GRANT_POINTS,
            uuid.UUID(message_id.decode()),
            event["customer_id"],
            uuid.UUID(event["order_id"]),
            event["points"],
            uuid.uuid4(),
            queue,
            command,
        )

    while True:
        fetched = await consumer.getmany(timeout_ms=100, max_records=500)
        records = [record for batch in fetched.values() for record in batch]
        if not records:
            continue
        await asyncio.gather(*(grant(r.value or b"", dict(r.headers)["ce_id"]) for r in records))
        await consumer.commit()
        progress.granted += len(records)


async def deliver(
    queue: aio_pika.abc.AbstractQueue,
    pool: asyncpg.Pool,
    smtp: SmtpConnections,
    progress: Progress,
) -> None:
    """Notification's consumer: each command in its own task (the prefetch
    bounds how many), acked once its transaction has committed."""

    async def handle(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        command = orjson.loads(message.body)
        message_id = message.message_id or ""
        async with pool.acquire() as connection, connection.transaction():
            first = await connection.fetchval(
                RECORD_DELIVERY,
                uuid.UUID(message_id),
                command["kind"],
                command["recipient"],
                command["subject"],
            )
            if first is not None:
                await smtp.send(message_id, command)
        await message.ack()
        if first is not None:
            progress.mail_sent()

    async with asyncio.TaskGroup() as handlers, queue.iterator() as messages:
        async for message in messages:
            handlers.create_task(handle(message))


async def place_orders(
    pool: asyncpg.Pool, tag: str, topic: str, queue: str, progress: Progress
) -> None:
    """Each order in its own transaction, WRITERS at a time."""
    numbers = iter(range(progress.orders))

    async def writer() -> None:
        async with pool.acquire() as connection:
            for n in numbers:  # shared by the writers: each takes the next order
                order_id, customer = uuid.uuid4(), f"{tag}-{n}"
                email = f"{customer}@example.com"
                event = {
                    "order_id": str(order_id),
                    "customer_id": customer,
                    "customer_email": email,
                    "currency": "EUR",
                    "total": "10.00",
                    "points": 10,
                }
                command = {
                    "kind": "order_confirmation",
                    "recipient": email,
                    "subject": f"Your order {order_id} was received",
                    "body": f"Thank you for your order {order_id} of 10.00 EUR.",
                }
                await connection.execute(
                    PLACE_ORDER,
                    order_id,
                    customer,
                    email,
                    Decimal("10.00"),
                    uuid.uuid4(),
                    topic,
                    str(order_id),
                    orjson.dumps(event).decode(),
                    uuid.uuid4(),
                    queue,
                    orjson.dumps(command).decode(),
                )
                progress.placed += 1

    async with asyncio.TaskGroup() as writers:
        for _ in range(WRITERS):
            writers.create_task(writer())


@contextlib.asynccontextmanager
async def schema(dsn: str, name: str, ddl: str) -> AsyncIterator[None]:
    """A bench-owned schema in a service's database (the service's user owns
    the database), with these tables; dropped on exit."""
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f"create schema {name}; set search_path = {name}; {ddl}")
        yield
    finally:
        try:
            await admin.execute(f"drop schema if exists {name} cascade")
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def pool_of(
    dsn: str, name: str, size: int, settings: dict[str, str] | None = None
) -> AsyncIterator[asyncpg.Pool]:
    """A fixed-size pool of connections whose search_path is the schema."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=size,
        max_size=size,
        server_settings={"search_path": name, **(settings or {})},
    )
    try:
        yield pool
    finally:
        try:
            await asyncio.wait_for(pool.close(), 10)
        except TimeoutError:
            # A connection still busy after a failure: its locks go with it,
            # so that the schema can be dropped.
            pool.terminate()


async def ceiling(endpoints: Endpoints, orders: int) -> CeilingResult:
    run = uuid.uuid4().hex[:8]
    names = f"ceiling-{run}"  # the topic, the queue and the consumer group
    progress = Progress(orders)
    amqp_host, amqp_port = address(endpoints.rabbitmq_amqp, "AMQP")
    smtp_host, smtp_port = address(endpoints.mail_smtp, "SMTP")
    async with contextlib.AsyncExitStack() as stack:
        # The relays mark rows sent on connections with synchronous_commit off,
        # as the system's relay does: a mark lost to a crash only means a
        # second publish, which the consumers' inboxes absorb.
        relay_settings = {"synchronous_commit": "off"}
        databases, name = endpoints.databases, f"ceiling_{run}"
        for service, ddl in (
            ("order", ORDER_TABLES + OUTBOX_TABLE),
            ("point", INBOX_TABLE + POINT_TABLES + OUTBOX_TABLE),
            ("notification", INBOX_TABLE + NOTIFICATION_TABLES),
        ):
            await stack.enter_async_context(schema(databases[service], name, ddl))
        order_db = await stack.enter_async_context(pool_of(databases["order"], name, WRITERS))
        order_relay_db = await stack.enter_async_context(
            pool_of(databases["order"], name, RELAY_LANES, relay_settings)
        )
        point_db = await stack.enter_async_context(
            pool_of(databases["point"], name, POINT_CONNECTIONS)
        )
        point_relay_db = await stack.enter_async_context(
            pool_of(databases["point"], name, RELAY_LANES, relay_settings)
        )
        # As many as there are SMTP connections: a delivery's transaction stays
        # open through its SMTP exchange, so more could only wait, idle in
        # transaction; the prefetched commands wait in memory instead.
        notification_db = await stack.enter_async_context(
            pool_of(databases["notification"], name, SMTP_CONNECTIONS)
        )

        topic = names
        await create_topic(endpoints.kafka_bootstrap, topic)
        stack.push_async_callback(delete_topic, endpoints.kafka_bootstrap, topic)
        producer = kafka.durable_producer(endpoints.kafka_bootstrap, linger_ms=2)
        await producer.start()
        stack.push_async_callback(producer.stop)
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=endpoints.kafka_bootstrap,
            group_id=names,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        # Runs after the consumer has left its group (the stack unwinds in
        # reverse): a group with members cannot be deleted.
        stack.push_async_callback(delete_group, endpoints.kafka_bootstrap, names)
        await consumer.start()
        stack.push_async_callback(consumer.stop)

        # One AMQP connection per component, as three processes would have.
        def amqp() -> Awaitable[aio_pika.abc.AbstractConnection]:
            return aio_pika.connect(
                host=amqp_host,
                port=amqp_port,
                login=endpoints.rabbitmq_user,
                password=endpoints.rabbitmq_password,
                timeout=10,
            )

        order_amqp = await amqp()
        stack.push_async_callback(order_amqp.close)
        point_amqp = await amqp()
        stack.push_async_callback(point_amqp.close)
        notification_amqp = await amqp()
        stack.push_async_callback(notification_amqp.close)
        consuming = await notification_amqp.channel()
        await consuming.set_qos(prefetch_count=PREFETCH)
        queue = await consuming.declare_queue(
            names, durable=True, arguments={"x-queue-type": "classic"}
        )
        stack.push_async_callback(queue.delete, if_unused=False, if_empty=False)
        order_channel = await order_amqp.channel(publisher_confirms=True)
        point_channel = await point_amqp.channel(publisher_confirms=True)

        smtp = SmtpConnections(smtp_host, smtp_port, SMTP_CONNECTIONS)
        stack.push_async_callback(smtp.close)
        await smtp.open()
        stack.push_async_callback(delete_mails, endpoints.mail_api, run)

        # The clock starts with every client connected, the producer knowing
        # the new topic's partitions and the consumer in its group: joining
        # costs seconds that have nothing to do with an order.
        await producer.partitions_for(topic)
        await joined(consumer)

        def relayed_order(n: int) -> None:
            progress.relayed_order += n

        def relayed_point(n: int) -> None:
            progress.relayed_point += n

        cpu, started = time.process_time(), time.perf_counter()
        async with asyncio.TaskGroup() as stages:
            loops = [
                *(
                    stages.create_task(
                        relay(order_relay_db, producer, order_channel, relayed_order)
                    )
                    for _ in range(RELAY_LANES)
                ),
                stages.create_task(grant_points(consumer, point_db, names, progress)),
                *(
                    stages.create_task(relay(point_relay_db, None, point_channel, relayed_point))
                    for _ in range(RELAY_LANES)
                ),
                stages.create_task(deliver(queue, notification_db, smtp, progress)),
            ]
            await place_orders(order_db, run, topic, names, progress)
            try:
                await asyncio.wait_for(progress.done.wait(), timeout=60 + orders / 5)
            except TimeoutError:
                raise TimeoutError(f"ceiling not done: {progress}") from None
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            for loop in loops:
                loop.cancel()
        await mails_arrived(endpoints.mail_api, run, 2 * orders)
    return CeilingResult(orders=orders, wall_s=wall, cpu_s=cpu)


async def joined(consumer: AIOKafkaConsumer, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while len(consumer.assignment()) < PARTITIONS:
        if time.monotonic() > deadline:
            raise TimeoutError(f"consumer has {consumer.assignment()} after {timeout_s}s")
        await asyncio.sleep(0.05)


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, replication_factor=1)])
    finally:
        await admin.close()


async def delete_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


async def delete_group(bootstrap: str, group: str) -> None:
    """The consumer group and its committed offsets. aiokafka's admin client has
    no call for it, so this sends Kafka's DeleteGroups request to the group's
    coordinator through the client's request method."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        coordinator = await admin.find_coordinator(group)
        response = await admin._send_request_to_node(coordinator, DeleteGroupsRequest([group]))
        for name, error_code in response.results:
            # GROUP_ID_NOT_FOUND (69): never joined, when setting up failed early.
            if error_code not in (0, 69):
                raise RuntimeError(f"deleting consumer group {name}: Kafka error {error_code}")
    finally:
        await admin.close()


def mail_query(run: str) -> str:
    # Recipients are <run>-<n>@example.com.
    return f'to:"{run}-"'


async def mails_arrived(mail_api: str, run: str, expected: int) -> None:
    """The mail catcher holds every mail the SMTP server accepted (a check
    after the clock stopped: the 250 replies already said so)."""
    async with httpx.AsyncClient(base_url=f"{mail_api}/api/v1", timeout=10) as http:
        deadline = time.monotonic() + 15
        while True:
            response = await http.get("/search", params={"query": mail_query(run), "limit": 1})
            response.raise_for_status()
            found = int(response.json()["messages_count"])
            if found >= expected:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the mail catcher has {found} of {expected} mails")
            await asyncio.sleep(0.5)


async def delete_mails(mail_api: str, run: str) -> None:
    async with httpx.AsyncClient(base_url=f"{mail_api}/api/v1", timeout=30) as http:
        response = await http.delete("/search", params={"query": mail_query(run)})
        response.raise_for_status()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=1000)
    args = parser.parse_args()
    result = await ceiling(target_from_env().endpoints, args.orders)
    print(f"ceiling_orders_per_s={result.orders_per_s:.1f} orders={result.orders}")


if __name__ == "__main__":
    asyncio.run(main())
