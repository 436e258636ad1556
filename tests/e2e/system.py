"""Driving the system from outside and checking what it did.

Everything here goes through a target's endpoints: the HTTP API, the mail
catcher, the brokers' own admin interfaces and independent clients (kcat,
the RabbitMQ management API), and read-only queries of the databases.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import httpx

from catalogue.services import RELAYED
from catalogue.topology import NOTIFICATION_SEND, ORDERS, ORDERS_POINT_SERVICE_DLT
from tests.e2e.targets import Endpoints
from tests.support import kafka
from tests.support.mail import MailCatcher
from tests.support.orders import order_request
from tests.support.rabbit import RabbitAdmin

PARKING_LOT = f"{NOTIFICATION_SEND.routing_key}.parking-lot"


@dataclass
class PlacedOrder:
    id: str
    customer_id: str
    email: str
    total_points: int
    created_at: datetime
    cancelled: bool = False


@dataclass
class Injected:
    """What a scenario put on the brokers by hand, so that the checker can tell
    injected dead letters from real ones."""

    dead_letter_topic_ids: set[str] = field(default_factory=set)
    parking_lot_ids: set[str] = field(default_factory=set)


class System:
    def __init__(self, endpoints: Endpoints) -> None:
        self.ep = endpoints
        self.api = httpx.AsyncClient(base_url=endpoints.order_api, timeout=10)
        # 503s that place() retried.
        self.refused = 0
        self.mail = MailCatcher(endpoints.mail_api)
        self.rabbit = RabbitAdmin(
            endpoints.rabbitmq_management, endpoints.rabbitmq_user, endpoints.rabbitmq_password
        )

    async def close(self) -> None:
        await self.api.aclose()
        await self.mail.close()
        await self.rabbit.close()

    # -- driving ------------------------------------------------------------
    async def place(self, tag: str, amount: str = "10.00", retries: int = 0) -> PlacedOrder:
        """POST /orders; a 503 is retried up to `retries` times after its
        Retry-After (at most 1 s), as a client would (the benchmarks do)."""
        customer = f"e2e-{tag}-{uuid.uuid4().hex[:10]}"
        email = f"{customer}@example.com"
        request = order_request(customer, amount, "sku-e2e")
        response = await self.api.post("/orders", json=request)
        for _ in range(retries):
            if response.status_code != 503:
                break
            self.refused += 1
            await asyncio.sleep(min(1.0, float(response.headers.get("retry-after", 1))))
            response = await self.api.post("/orders", json=request)
        if response.status_code != 201:
            raise AssertionError(f"POST /orders → {response.status_code}: {response.text}")
        body = response.json()
        return PlacedOrder(
            body["id"],
            customer,
            email,
            int(float(amount)),
            datetime.fromisoformat(body["created_at"]),
        )

    async def cancel(self, order: PlacedOrder) -> None:
        response = await self.api.post(f"/orders/{order.id}/cancel")
        assert response.status_code == 200, response.text
        order.cancelled = True

    async def traffic(self, tag: str, count: int, rate_per_s: float) -> list[PlacedOrder]:
        """`count` orders at a steady rate; every one must be accepted."""
        orders = []
        started = time.monotonic()
        for n in range(count):
            delay = started + n / rate_per_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            orders.append(await self.place(tag))
        return orders

    async def summary(self, customer: str) -> dict[str, Any]:
        response = await self.api.get(f"/customers/{customer}/summary")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    # -- injecting by hand --------------------------------------------------
    async def produce_raw(
        self, topic: str, key: str, value: bytes, headers: dict[str, str]
    ) -> None:
        """Bytes on a Kafka topic through kcat, not the library the services use."""
        args = ["kcat", "-P", "-b", self.ep.kafka_bootstrap, "-t", topic, "-k", key]
        for name, header in headers.items():
            args += ["-H", f"{name}={header}"]

        def call() -> None:
            subprocess.run(args, input=value, capture_output=True, timeout=60, check=True)

        await asyncio.to_thread(call)

    async def send_raw_notification(self, body: str) -> str:
        """`body`, as it is, to notification.send, without CloudEvents attributes;
        its message id."""
        message_id = str(uuid.uuid4())
        await self.rabbit.publish(
            NOTIFICATION_SEND.exchange,
            NOTIFICATION_SEND.routing_key,
            body,
            properties={"message_id": message_id},
        )
        return message_id

    async def placed_record(self, order_id: str) -> kafka.Record | None:
        """The order's OrderPlaced record on the topic, if it is there yet."""
        records = await kafka.read(self.ep.kafka_bootstrap, ORDERS.topic, until=10**9, timeout_s=5)
        return next(
            (
                r
                for r in records
                if r.key == order_id and r.headers.get("ce_type") == "order.placed"
            ),
            None,
        )

    # -- reading state ------------------------------------------------------
    async def query(self, service: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.ep.databases[service], timeout=10)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def mail_command_ids(self, orders: list[PlacedOrder]) -> Counter[str]:
        """SendNotification ids of every mail delivered to these orders' addresses
        (the mail's Message-ID carries the command id), each with its number of copies."""
        return Counter({m: len(c) for m, c in (await self.mail_copies(orders)).items()})

    async def mail_copies(self, orders: list[PlacedOrder]) -> dict[str, list[datetime]]:
        """When the mail server accepted each copy of each SendNotification's mail
        to these orders' addresses, by command id."""
        messages: list[dict[str, Any]] = []
        prefixes = {o.customer_id.rsplit("-", 1)[0] for o in orders}
        if len(orders) > 20 and len(prefixes) == 1:
            # Many orders of one run: one paged search instead of one per address.
            addresses = {o.email for o in orders}
            messages = [
                message
                for message in await self.mail.search_all(f'to:"{prefixes.pop()}-"')
                if any(to["Address"] in addresses for to in message["To"])
            ]
        else:
            for order in orders:
                messages += await self.mail.to(order.email)
        copies: dict[str, list[datetime]] = defaultdict(list)
        for message in messages:
            copies[command_id(message)].append(datetime.fromisoformat(message["Created"]))
        return {m: sorted(c) for m, c in copies.items()}


def command_id(message: dict[str, Any]) -> str:
    return str(message["MessageID"]).split("@")[0].split(".")[-1]


@dataclass
class Report:
    orders: int
    lost: list[str] = field(default_factory=list)
    applied_twice: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Mails delivered more than once (also in applied_twice): command id → when
    # the mail server accepted each copy.
    mail_resent: dict[str, list[datetime]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.applied_twice or self.problems)

    def __str__(self) -> str:
        return (
            f"{self.orders} orders: lost={self.lost[:5]} applied_twice={self.applied_twice[:5]}"
            f" problems={self.problems[:5]}"
        )


async def check_invariants(
    system: System,
    orders: list[PlacedOrder],
    injected: Injected | None = None,
    dead_letter_offsets: dict[int, int] | None = None,
    timeout_s: float = 180,
) -> Report:
    """Wait for the system to drain, then check what every scenario promises:

    - every accepted order has exactly one grant, and one revoke if cancelled;
    - every SendNotification sent for these orders (read from the outboxes) was
      delivered exactly once, and no other mail reached their addresses;
    - no outbox holds unsent rows;
    - the dead-letter topic (from `dead_letter_offsets`) and the parking lot
      hold only what the scenario injected.
    """
    started = time.monotonic()
    previous: Report | None = None
    while True:
        report = await _check(system, orders, injected, dead_letter_offsets)
        elapsed = time.monotonic() - started
        # Only duplicates left, the same twice running: drained; waiting
        # cannot undo a duplicate (and would make a soak's drain time the timeout).
        settled = (
            not (report.lost or report.problems)
            and previous is not None
            and sorted(report.applied_twice) == sorted(previous.applied_twice)
        )
        if report.ok or settled or elapsed > timeout_s:
            return report
        previous = report
        # A check of thousands of orders is itself load (the mail catcher's
        # search above all): poll less often the longer the drain takes.
        await asyncio.sleep(min(30.0, 1.0 + elapsed / 10))


async def _check(
    system: System,
    orders: list[PlacedOrder],
    injected: Injected | None,
    dead_letter_offsets: dict[int, int] | None,
) -> Report:
    report = Report(len(orders))
    ids = [uuid.UUID(o.id) for o in orders]
    rows = await system.query(
        "point",
        "select order_id::text, kind, count(*) as n from point_ledger"
        " where order_id = any($1::uuid[]) group by order_id, kind",
        ids,
    )
    effects = {(r["order_id"], r["kind"]): r["n"] for r in rows}
    for o in orders:
        for kind, expected in (("grant", 1), ("revoke", 1 if o.cancelled else 0)):
            n = effects.get((o.id, kind), 0)
            if n < expected:
                report.lost.append(f"{kind} of {o.id}")
            elif n > expected:
                report.applied_twice.append(f"{kind} of {o.id} x{n}")

    keys = [o.id for o in orders] + [o.customer_id for o in orders]
    expected_mail: set[str] = set()
    for service in RELAYED:
        backlog = await system.query(
            service,
            "select count(*) as n from outbox where state in ('pending', 'failed')",
        )
        if backlog[0]["n"]:
            report.problems.append(f"{service} outbox holds {backlog[0]['n']} unsent rows")
        sent = await system.query(
            service,
            "select message_id::text from outbox where message_type = $1"
            " and ordering_key = any($2::text[])",
            "notification.send",
            keys,
        )
        expected_mail |= {r["message_id"] for r in sent}
    delivered = await system.mail_copies(orders)
    report.lost += [f"mail {m}" for m in expected_mail - delivered.keys()]
    report.mail_resent = {m: c for m, c in delivered.items() if len(c) > 1}
    report.applied_twice += [f"mail {m} x{len(c)}" for m, c in report.mail_resent.items()]
    report.problems += [f"unexpected mail {m}" for m in delivered.keys() - expected_mail]

    if dead_letter_offsets is not None:
        records = await kafka.read(
            system.ep.kafka_bootstrap,
            ORDERS_POINT_SERVICE_DLT.topic,
            until=0,
            since=dead_letter_offsets,
            timeout_s=3,
            settle_s=0.5,
        )
        wanted = injected.dead_letter_topic_ids if injected else set()
        found = {
            r.headers.get("ce_id", r.headers.get("x-dead-letter-reason", "?")) for r in records
        }
        if found != wanted:
            report.problems.append(f"dead-letter topic holds {sorted(found)}, injected {wanted}")
    if injected and injected.parking_lot_ids:
        parked = {m["properties"].get("message_id") for m in await system.rabbit.peek(PARKING_LOT)}
        if not injected.parking_lot_ids <= parked:
            report.problems.append(f"parking lot lacks {injected.parking_lot_ids - parked}")
    return report
