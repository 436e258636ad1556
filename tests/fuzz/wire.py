"""The message fuzzer's independent clients: publishing (aiokafka; aio-pika as
the RabbitMQ administrator), reading what the consumers dead-lettered or
answered, the consumers' liveness, and the clean-up.

Dead letters on RabbitMQ are taken off their queues as they are found (the
fuzzer's own only: a message carries its fuzz id in the header `x-fuzz-id`
and as its AMQP correlation id, which the dead-letter copy keeps); anything
else there is put back. A run of hundreds of messages would otherwise leave
them at the head of the parking lot, where the end-to-end checker looks. The
Kafka dead-letter topic keeps them (the checker reads it from an offset).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aio_pika
import httpx
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import MessageSizeTooLargeError

from catalogue.topology import (
    COMMANDS_EXCHANGE,
    NOTIFICATION_PARKING_LOT,
    NOTIFICATION_SEND,
    ORDERS,
    ORDERS_POINT_SERVICE_DLT,
    POINT_BALANCE,
    POINT_COMMANDS,
    POINT_COMMANDS_DEAD_LETTER,
    POINT_SERVICE_GROUP,
    notification_retry_queue,
)
from stackctl.control import build
from tests.e2e.system import System
from tests.fuzz.messages import BALANCE, KAFKA_ORDERS, NOTIFY, Expect, FuzzMessage
from tests.support import kafka
from tests.support.metrics import Samples, metric, scrape
from tests.support.waiting import eventually, responds

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
# Where each RabbitMQ consumer's bad input goes.
DEAD_LETTER_QUEUES = {
    POINT_COMMANDS.routing_key: POINT_COMMANDS_DEAD_LETTER,
    NOTIFICATION_SEND.routing_key: NOTIFICATION_PARKING_LOT,
}
CONSUMED_QUEUES = (
    POINT_COMMANDS.routing_key,
    POINT_BALANCE.routing_key,
    NOTIFICATION_SEND.routing_key,
    *(notification_retry_queue(n) for n in (1, 2, 3)),
)
# FastStream's count of point.balance requests that got no answer.
BALANCE_ERRORS = {"handler": f"{COMMANDS_EXCHANGE}.{POINT_BALANCE.routing_key}", "status": "error"}
# Inbox consumer names (their duplicates counter) per door.
INBOX = {
    KAFKA_ORDERS: ("point", "point-service.orders"),
    POINT_COMMANDS.routing_key: ("point", "point-service.commands"),
    NOTIFY: ("notification", "notification-service.send"),
}


@dataclass
class Snapshot:
    dead_letter_offsets: dict[int, int]
    metrics: dict[str, Samples]


@dataclass(frozen=True)
class DeadLetter:
    where: str
    kind: str
    reason: str
    identity: str  # ce_id, else the reason: what check_invariants compares


class Wire:
    def __init__(self, system: System, tag: str, amqp_url: str, services: dict[str, str]) -> None:
        self.system = system
        self.tag = tag
        self.amqp_url = amqp_url
        self.services = services  # service -> its HTTP base URL
        self.http = httpx.AsyncClient(timeout=5)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=system.ep.kafka_bootstrap,
            acks="all",
            max_request_size=16 * 1024 * 1024,
        )
        self.connection: AbstractRobustConnection | None = None
        self.channel: AbstractChannel | None = None  # publishing, with confirms
        self.requests: AbstractChannel | None = None  # point.balance, direct reply-to
        self.answers: Counter[str] = Counter()  # correlation id -> answers
        self.awaited: dict[str, asyncio.Event] = {}
        self.dead_letter_read: dict[int, int] = {}
        self.dead_letters: list[tuple[Any, DeadLetter]] = []  # (key, dead letter)
        self.produced: dict[int, int] = {}  # Kafka partition -> last offset published

    # -- set-up -------------------------------------------------------------
    async def start(self) -> None:
        await self.producer.start()
        self.connection = await aio_pika.connect_robust(self.amqp_url, timeout=10)
        self.channel = await self.connection.channel(publisher_confirms=True)
        self.requests = await self.connection.channel(publisher_confirms=True)
        replies = await self.requests.get_queue(DIRECT_REPLY_TO, ensure=False)
        await replies.consume(self._answered, no_ack=True)

    async def _answered(self, message: AbstractIncomingMessage) -> None:
        correlation = message.correlation_id or "?"
        self.answers[correlation] += 1
        if correlation in self.awaited:
            self.awaited[correlation].set()

    async def close(self) -> None:
        await self.producer.stop()
        if self.connection is not None:
            await self.connection.close()
        await self.http.aclose()

    async def snapshot(self) -> Snapshot:
        offsets = await kafka.end_offsets(self.system.ep.kafka_bootstrap, DLT)
        self.dead_letter_read = dict(offsets)
        return Snapshot(offsets, {s: await self.metrics(s) for s in ("point", "notification")})

    async def metrics(self, service: str) -> Samples:
        return await scrape(f"{self.services[service]}/metrics")

    # -- publishing ---------------------------------------------------------
    async def publish(self, message: FuzzMessage) -> None:
        if message.consumer == KAFKA_ORDERS:
            try:
                sent = await self.producer.send_and_wait(
                    KAFKA_ORDERS, message.body, key=message.key, headers=message.headers
                )
            except MessageSizeTooLargeError:
                message.expect = Expect.REFUSED
                return
            message.coordinates = (sent.partition, sent.offset)
            self.produced[sent.partition] = max(self.produced.get(sent.partition, -1), sent.offset)
            return
        assert self.channel is not None
        assert self.requests is not None
        request = message.consumer == BALANCE
        channel = self.requests if request else self.channel
        reply_to = message.reply_to or (DIRECT_REPLY_TO if request else None)
        exchange = await channel.get_exchange(COMMANDS_EXCHANGE, ensure=False)
        await exchange.publish(
            aio_pika.Message(
                message.body,
                headers=message.headers,
                content_type=message.content_type,
                message_id=message.message_id,
                correlation_id=message.fuzz_id,
                reply_to=reply_to,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=message.consumer,
            mandatory=True,
        )

    async def publish_command(
        self, routing_key: str, body: dict[str, Any], message_id: str
    ) -> None:
        """A well-formed command (the seed of the reused-id messages)."""
        assert self.channel is not None
        exchange = await self.channel.get_exchange(COMMANDS_EXCHANGE, ensure=False)
        headers: dict[str, Any] = {
            "ce-specversion": "1.0",
            "ce-id": message_id,
            "ce-type": "point.grant",
            "ce-source": "fuzz",
            "ce-schemaversion": "1",
        }
        await exchange.publish(
            aio_pika.Message(
                json.dumps(body).encode(),
                headers=headers,
                content_type="application/json",
                message_id=message_id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=routing_key,
            mandatory=True,
        )

    # -- what became of the messages ------------------------------------------
    async def read_dead_letters(self) -> None:
        """New records on the Kafka dead-letter topic, and the fuzzer's messages
        on the RabbitMQ dead-letter queues (taken off them)."""
        bootstrap = self.system.ep.kafka_bootstrap
        ends = await kafka.end_offsets(bootstrap, DLT)
        if any(ends[p] > self.dead_letter_read.get(p, 0) for p in ends):
            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
            await consumer.start()
            try:
                partitions = [TopicPartition(DLT, p) for p in ends]
                consumer.assign(partitions)
                for tp in partitions:
                    consumer.seek(tp, self.dead_letter_read.get(tp.partition, 0))
                deadline = time.monotonic() + 10
                while (
                    any(self.dead_letter_read.get(p, 0) < ends[p] for p in ends)
                    and time.monotonic() < deadline
                ):
                    for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                        for record in records:
                            self._kafka_dead_letter(record)
                            self.dead_letter_read[tp.partition] = record.offset + 1
            finally:
                await consumer.stop()
        for queue in DEAD_LETTER_QUEUES.values():
            await self._take(queue)

    def _kafka_dead_letter(self, record: Any) -> None:
        headers = {k: (v or b"").decode(errors="replace") for k, v in record.headers}
        key = None
        if headers.get("x-original-topic") == KAFKA_ORDERS:
            with contextlib.suppress(KeyError, ValueError):
                key = (
                    int(headers["x-original-partition"]),
                    int(headers["x-original-offset"]),
                )
        reason = headers.get("x-dead-letter-reason", "?")
        self.dead_letters.append(
            (
                key,
                DeadLetter(
                    DLT,
                    headers.get("x-dead-letter-kind", "?"),
                    reason,
                    headers.get("ce_id", reason),
                ),
            )
        )

    async def _take(self, queue_name: str) -> None:
        assert self.connection is not None
        async with self.connection.channel() as channel:
            queue = await channel.get_queue(queue_name)
            others = []
            while (message := await queue.get(no_ack=False, fail=False)) is not None:
                headers = message.headers or {}
                fuzz_id = headers.get("x-fuzz-id") or message.correlation_id or ""
                if not (isinstance(fuzz_id, str) and fuzz_id.startswith(f"{self.tag}-")):
                    others.append(message)
                    continue
                self.dead_letters.append(
                    (
                        fuzz_id,
                        DeadLetter(
                            queue_name,
                            _text(headers.get("x-dead-letter-kind")),
                            _text(headers.get("x-dead-letter-reason")),
                            message.message_id or "?",
                        ),
                    )
                )
                await message.ack()
            for message in others:
                await message.nack(requeue=True)

    def attach(self, messages: list[FuzzMessage]) -> list[str]:
        """Give each message what was found for it; what matched none of them."""
        by_key: dict[Any, FuzzMessage] = {}
        for m in messages:
            m.outcomes.clear()
            m.reasons.clear()
            by_key[m.coordinates if m.consumer == KAFKA_ORDERS else m.fuzz_id] = m
        strays = []
        for key, dead in self.dead_letters:
            found = by_key.get(key)
            if found is None:
                strays.append(f"{dead.where} holds a message no fuzz message explains: {dead}")
                continue
            found.outcomes.append(f"dead-lettered ({dead.kind})")
            found.reasons.append(dead.reason)
        for m in messages:
            if m.consumer == BALANCE:
                m.outcomes += ["answered"] * self.answers[m.fuzz_id]
        return strays

    def dead_letter_ids(self, messages: list[FuzzMessage]) -> set[str]:
        """The identities check_invariants sees of the fuzzer's Kafka dead letters."""
        ours = {m.coordinates for m in messages if m.coordinates}
        return {dead.identity for key, dead in self.dead_letters if key in ours}

    async def settle(self, messages: list[FuzzMessage]) -> None:
        """Wait until every message expected somewhere is there, and the
        consumers' queues and the group's lag are empty (twice, a stats
        interval apart), or until the time is up."""
        deadline = time.monotonic() + 60 + len(messages) * 0.2
        drained_once = False
        while time.monotonic() < deadline:
            await self.read_dead_letters()
            self.attach(messages)
            pending = [
                m
                for m in messages
                if m.expect in (Expect.DEAD_LETTERED, Expect.ANSWERED) and not m.outcomes
            ]
            drained = not pending and await self.drained()
            if drained and drained_once:
                break
            drained_once = drained
            await asyncio.sleep(6 if drained else 2)
        await self.read_dead_letters()

    async def drained(self) -> bool:
        for queue in CONSUMED_QUEUES:
            if await self.system.rabbit.depth(queue):
                return False
        admin = AIOKafkaAdminClient(bootstrap_servers=self.system.ep.kafka_bootstrap)
        await admin.start()
        try:
            committed = await admin.list_consumer_group_offsets(POINT_SERVICE_GROUP)
        finally:
            await admin.close()
        for partition, offset in self.produced.items():
            done = committed.get(TopicPartition(KAFKA_ORDERS, partition))
            if done is None or done.offset <= offset:
                return False
        return True

    # -- checks -------------------------------------------------------------
    def judge(self, messages: list[FuzzMessage]) -> list[str]:
        """Each message against what was expected of it."""
        problems = self.attach(messages)
        for m in messages:
            dead = [o for o in m.outcomes if o.startswith("dead-lettered")]
            answers = m.outcomes.count("answered")
            if m.expect is Expect.DEAD_LETTERED:
                if len(dead) > 1:
                    problems.append(f"{m}: dead-lettered {len(dead)} times")
                if dead and dead[0] != "dead-lettered (poison)":
                    problems.append(f"{m}: {dead[0]}, not as poison: {m.reasons[0][:200]}")
            elif m.expect is Expect.ANSWERED and answers != 1:
                problems.append(f"{m}: answered {answers} times, expected once")
            elif m.expect in (Expect.IGNORED, Expect.NO_ANSWER, Expect.REFUSED) and m.outcomes:
                problems.append(f"{m}: expected {m.expect}, found {m.outcomes}")
        return problems

    async def effects(
        self,
        messages: list[FuzzMessage],
        tag: str,
        fake_orders: list[str],
        seed_grant: str,
        before: Snapshot,
    ) -> list[str]:
        """No bad message had an effect: no points for the orders reused-id
        messages made up, the seed grant applied once, no mail to a fuzz
        address; every skipped duplicate and unanswered request counted."""
        problems = []
        if fake_orders:
            rows = await self.system.query(
                "point",
                "select order_id::text from point_ledger where order_id = any($1::uuid[])",
                fake_orders,
            )
            problems += [f"points granted for made-up order {r['order_id']}" for r in rows]
        [applied] = await self.system.query(
            "point",
            "select count(*) as n from point_ledger where message_id = $1::uuid",
            seed_grant,
        )
        if applied["n"] != 1:
            problems.append(f"the seed grant {seed_grant} applied {applied['n']} times")
        mails = await self.system.mail.search_all(f'to:"{tag}-"')
        problems += [f"mail delivered to {m['To'][0]['Address']}" for m in mails]
        # A request to a (bogus) direct reply-to address is answered, into the void.
        unanswered = sum(
            1
            for m in messages
            if m.expect is Expect.NO_ANSWER and not (m.reply_to or "").startswith(DIRECT_REPLY_TO)
        )
        balance_errors = [
            metric(samples, "faststream_received_processed_messages_total", **BALANCE_ERRORS)
            for samples in (before.metrics["point"], await self.metrics("point"))
        ]
        if balance_errors[1] - balance_errors[0] < unanswered:
            problems.append(
                f"{unanswered} requests left unanswered, "
                f"{balance_errors[1] - balance_errors[0]:.0f} counted as errors"
            )
        ignored: Counter[str] = Counter(m.consumer for m in messages if m.expect is Expect.IGNORED)
        for consumer, expected in ignored.items():
            service, inbox = INBOX[consumer]
            now = await self.metrics(service)
            counted = metric(now, "messaging_duplicates_skipped_total", consumer=inbox) - metric(
                before.metrics[service], "messaging_duplicates_skipped_total", consumer=inbox
            )
            if counted < expected:
                problems.append(f"{inbox}: {expected} duplicates sent, {counted:.0f} counted")
        return problems

    async def consumers_alive(self) -> dict[str, bool]:
        """Each consumer's process ready, each queue with its consumer, the
        Kafka group with a member for every partition, and a request answered."""
        alive: dict[str, bool] = {}
        for service, url in self.services.items():
            alive[f"{service}-service ready"] = await self._ready(f"{url}/health/ready")
        for queue in (
            POINT_COMMANDS.routing_key,
            POINT_BALANCE.routing_key,
            NOTIFICATION_SEND.routing_key,
        ):
            alive[f"{queue} has a consumer"] = bool(await self.system.rabbit.consumers(queue))
        state, members = await kafka.group_members(
            self.system.ep.kafka_bootstrap, POINT_SERVICE_GROUP, KAFKA_ORDERS
        )
        owned = {p for member in members for p in member.partitions}
        partitions = await kafka.partitions(self.system.ep.kafka_bootstrap, KAFKA_ORDERS)
        alive[f"group {POINT_SERVICE_GROUP} {state} owns every partition of {KAFKA_ORDERS}"] = (
            state == "Stable" and owned == {tp.partition for tp in partitions}
        )
        alive["point.balance answers a request"] = await self._answers_a_request()
        return alive

    async def _ready(self, url: str, timeout_s: float = 30) -> bool:
        return await eventually(lambda: responds(self.http, url), bool, timeout_s, 1)

    async def _answers_a_request(self) -> bool:
        assert self.requests is not None
        correlation = f"liveness-{time.monotonic_ns()}"
        answered = self.awaited[correlation] = asyncio.Event()
        exchange = await self.requests.get_exchange(COMMANDS_EXCHANGE, ensure=False)
        await exchange.publish(
            aio_pika.Message(
                b'{"customer_id": "fuzz-liveness"}',
                content_type="application/json",
                correlation_id=correlation,
                reply_to=DIRECT_REPLY_TO,
            ),
            routing_key=POINT_BALANCE.routing_key,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(answered.wait(), 10)
        return answered.is_set()

    async def learn_reusable(
        self, orders: list[Any], seed_grant: str, timeout_s: float = 30
    ) -> tuple[list[tuple[str, str]], list[str], str | None]:
        """Messages already processed: the OrderPlaced of these orders (granted)
        with their keys, their order confirmations (delivered), the seed grant."""
        ids = [o.id for o in orders]
        deadline = time.monotonic() + timeout_s
        while True:
            placed = await self.system.query(
                "point",
                "select message_id::text, order_id::text from point_ledger"
                " where kind = 'grant' and order_id = any($1::uuid[])",
                ids,
            )
            commands = await self.system.query(
                "order",
                "select message_id from outbox where message_type = 'notification.send'"
                " and ordering_key = any($1::text[])",
                ids,
            )
            delivered = await self.system.query(
                "notification",
                "select message_id::text from deliveries where message_id = any($1::uuid[])",
                [r["message_id"] for r in commands],
            )
            granted = await self.system.query(
                "point", "select 1 from point_ledger where message_id = $1::uuid", seed_grant
            )
            if (placed and delivered and granted) or time.monotonic() > deadline:
                return (
                    [(r["message_id"], r["order_id"]) for r in placed],
                    [r["message_id"] for r in delivered],
                    seed_grant if granted else None,
                )
            await asyncio.sleep(0.5)

    # -- clean-up -----------------------------------------------------------
    async def clean_up(self) -> None:
        """The fuzzer's dead letters off the RabbitMQ queues (read_dead_letters
        takes them as it finds them): one last pass for late arrivals."""
        await self.read_dead_letters()

    def dead_letter_counts(self) -> dict[str, int]:
        counts: defaultdict[str, int] = defaultdict(int)
        for _key, dead in self.dead_letters:
            counts[dead.where] += 1
        return dict(counts)


DLT = ORDERS_POINT_SERVICE_DLT.topic
assert ORDERS.topic == KAFKA_ORDERS


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")


@contextlib.asynccontextmanager
async def connect(system: System, tag: str) -> AsyncIterator[Wire]:
    """The fuzzer's clients for the local stack (`make up`; STACK_* variables
    choose another one): its RabbitMQ administrator over AMQP and the
    services' own HTTP ports for health and metrics. On the way out, the
    run's dead letters are taken off the RabbitMQ queues, whatever happened."""
    stack, _ = build()
    s, admin = stack.s, stack.creds.rabbitmq_admin
    wire = Wire(
        system,
        tag,
        f"amqp://{admin.user}:{admin.password}@{s.host}:{s.rabbitmq_port}/",
        {
            "point": f"http://{s.host}:{s.point_service_port}",
            "notification": f"http://{s.host}:{s.notification_service_port}",
        },
    )
    await wire.start()
    try:
        yield wire
    finally:
        try:
            await wire.clean_up()
        finally:
            await wire.close()
