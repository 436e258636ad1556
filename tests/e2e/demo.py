"""`make demo`: a handful of orders through the running local stack, and where
to look at them.

It places three orders, cancels one, and places a fourth while the mail
catcher refuses every recipient, so that its mails fail once and are retried
from RabbitMQ's retry queue a second later. Meanwhile it prints the activity
notices the services publish on Redis, as the live page receives them. It
ends with the addresses of the live page, one order's trace, the mail
catcher, RabbitMQ's queues and Prometheus, and what each of them shows.

Not a test: it asserts nothing beyond what it needs to go on (each step
waits, bounded, for the mails it expects and says so when they do not come).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx
import redis.asyncio as redis

from catalogue.contracts.activity import CHANNEL_PATTERN, ActivityNotice
from tests.e2e.system import PlacedOrder, System
from tests.e2e.targets import LocalTarget

MAIL_TIMEOUT_S = 60.0
DEMO_CUSTOMER = re.compile(r"^e2e-demo-([a-z]+)-")
SMTP_FAILURES = re.compile(r'^notification_smtp_failures_total\{kind="temporary"\} (\S+)$', re.M)


@dataclass
class Feed:
    """The notices heard on Redis, printed as they come; the order.placed
    notices' trace ids kept for the links at the end."""

    started: float = field(default_factory=time.monotonic)
    heard: int = 0
    trace_ids: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def show(self, notice: ActivityNotice) -> None:
        self.heard += 1
        order = str(notice.order_id) if notice.order_id else ""
        if notice.trace_id and order and notice.kind == "order.placed":
            self.trace_ids[order] = notice.trace_id
        detail = " ".join(f"{k}={v}" for k, v in notice.detail.items())
        named = DEMO_CUSTOMER.match(notice.customer_id or "")
        if order and named:  # a notice may come before place() returns
            self.names.setdefault(order, named.group(1))
        who = self.names.get(order, order[:8])
        print(
            f"  {time.monotonic() - self.started:6.2f}s  {notice.source:<21} "
            f"{notice.kind.value:<16} {who:<10} {detail}"
        )


async def listen(client: redis.Redis, feed: Feed) -> None:
    pubsub = client.pubsub()
    await pubsub.psubscribe(CHANNEL_PATTERN)
    try:
        async for message in pubsub.listen():
            if message.get("type") == "pmessage":
                with contextlib.suppress(ValueError):
                    feed.show(ActivityNotice.model_validate_json(message["data"]))
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py


async def temporary_smtp_failures(http: httpx.AsyncClient, url: str) -> float:
    found = SMTP_FAILURES.search((await http.get(url)).text)
    return float(found.group(1)) if found else 0.0


async def wait_for_mails(system: System, order: PlacedOrder, count: int) -> None:
    mails = await system.mail.wait_for(order.email, count, timeout_s=MAIL_TIMEOUT_S)
    if len(mails) < count:
        sys.exit(
            f"demo: {order.customer_id}: {len(mails)} of {count} mails in {MAIL_TIMEOUT_S:.0f} s"
        )


async def demo() -> None:
    target = LocalTarget()
    s, creds = target.stack.s, target.stack.creds
    system = System(target.endpoints)
    feed = Feed()
    client = redis.Redis(
        host=s.host, port=s.redis_port, password=creds.redis_password, socket_timeout=2
    )
    listener: asyncio.Task[None] | None = None
    try:
        try:
            await client.ping()  # type: ignore[misc]
            listener = asyncio.create_task(listen(client, feed))
            await asyncio.sleep(0.2)  # the subscription is in place
        except redis.RedisError as exc:
            print(f"Redis does not answer ({exc}): no notices below; the orders work without.")
        print("Notices on Redis (activity.*), as the live page receives them:")

        placed = []
        for name, amount in (("alice", "42.00"), ("bob", "17.50"), ("carol", "99.90")):
            order = await system.place(f"demo-{name}", amount=amount)
            feed.names[order.id] = name
            placed.append(order)
        for order in placed:
            await wait_for_mails(system, order, 2)

        bob = placed[1]
        await system.cancel(bob)
        await asyncio.sleep(1.0)  # order.cancelled and points.revoked arrive

        # A mail that fails once: the mail catcher refuses every recipient
        # (451, temporary) until notification-service has met the failure.
        metrics = f"http://{s.host}:{s.notification_service_port}/metrics"
        http = httpx.AsyncClient(timeout=5)
        before = await temporary_smtp_failures(http, metrics)
        await system.mail.fail_recipients(451)
        try:
            dave = await system.place("demo-dave", amount="5.00")
            feed.names[dave.id] = "dave"
            deadline = time.monotonic() + 30
            while await temporary_smtp_failures(http, metrics) <= before:
                if time.monotonic() > deadline:
                    sys.exit("demo: no SMTP failure seen in 30 s; is notification-service up?")
                await asyncio.sleep(0.1)
        finally:
            await system.mail.fail_recipients(None)
            await http.aclose()
        print("  (the mail catcher refused dave's mail once; it waits in a retry queue)")
        await wait_for_mails(system, dave, 2)
        await asyncio.sleep(0.5)
        summary(target, feed, [*placed, dave])
    finally:
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        await client.aclose()
        await system.close()


def summary(target: LocalTarget, feed: Feed, orders: list[PlacedOrder]) -> None:
    s, creds = target.stack.s, target.stack.creds
    host = s.host
    alice = orders[0]
    trace = feed.trace_ids.get(alice.id)
    trace_url = (
        f"{target.endpoints.jaeger_query}/trace/{trace}"
        if trace
        else f"{target.endpoints.jaeger_query}/search?service=order-service"
    )
    promql = quote("sum by (job, outcome) (increase(activity_notices_total[5m]))")
    admin = creds.rabbitmq_admin
    print(
        f"""
{len(orders)} orders placed (bob's cancelled, dave's mails failed once and were
retried), {feed.heard} notices heard on Redis.

Where to look:
  live page      http://{host}:{s.live_feed_port}/
                 every order as it arrives, its points and both mails, the
                 latency of each hop, dead letters; it reloads its state from
                 the services' APIs whenever it (re)connects
  one trace      {trace_url}
                 alice's order: POST /orders, the outbox, Kafka, point-service,
                 its outbox, RabbitMQ, notification-service, SMTP: one trace
  mail catcher   {target.endpoints.mail_api}/
                 the {2 * len(orders)} mails; search an order id to find its two
  RabbitMQ       {target.endpoints.rabbitmq_management}/#/queues
                 (user {admin.user}, password in {s.state_dir}/credentials.json)
                 notification.send, its retry queues (dave's mail waited in
                 notification.send.retry.1), the parking lot
  Prometheus     {target.endpoints.prometheus}/graph?g0.expr={promql}&g0.tab=0
                 activity notices published and dropped; also try
                 notification_smtp_failures_total and outbox_pending_messages
orders: {json.dumps({feed.names.get(o.id, o.customer_id): o.id for o in orders})}"""
    )


def main() -> None:
    asyncio.run(demo())


if __name__ == "__main__":
    main()
