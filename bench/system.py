"""The whole system under load (`make bench`, outside CI).

1. throughput: N orders placed as fast as 32 concurrent clients can, timed until
   the last one has its points granted and both its mails (confirmation and
   points) delivered;
   orders/s = N / that time (what the whole pipeline absorbs, not what the API
   accepts);
2. latency: orders at a steady rate well below that, then per order:
   accepted (the order's created_at) → points granted (the ledger row's
   created_at) and → confirmation mail delivered (the mail catcher's receive
   time), all on this machine's clock. The points path is split at the Kafka
   record's timestamp (set when the relay produced it): outbox → Kafka is the
   relay's share, Kafka → ledger the consumer's. The mail path is split at the
   relay's publisher confirm (the outbox row's finished_at) and at the start
   of notification-service's delivery transaction (the delivery row's
   delivered_at). Each phase waits until all of its orders' work is done, so
   the next one starts with empty queues.

Before them, the API alone: POST /orders with order-relay stopped, so that
only order-service's work counts (`api_orders_per_s`). After the throughput,
the ceiling (bench/ceiling.py): the minimal work of an order done by raw
clients on the same components (`ceiling_orders_per_s`, and the system's
ratio to it). CPU per order is read from /proc for every process of the
local stack over the throughput phase (`cpu_ms_per_order`, the sum; the
table has each process).

Ends with one summary line:
`orders_per_s=X cpu_ms_per_order=X api_orders_per_s=X ceiling_orders_per_s=X
ratio_ceiling=X points_p99_ms=X email_p99_ms=X points_p50_ms=X email_p50_ms=X`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psutil

from bench.brokers import process_tree
from bench.ceiling import ceiling
from bench.profiling import PYTHON_PROCESSES, recording, summarize
from catalogue.topology import ORDERS
from tests.e2e.system import PlacedOrder, System
from tests.e2e.targets import KindTarget, LocalTarget, target_from_env
from tests.support import kafka
from tests.support.waiting import wait_until


def quantiles(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=100)
    return q[49], q[98]


async def settled(system: System, orders: list[PlacedOrder], timeout_s: float) -> None:
    """Until every order has its grant and both its mails (the confirmation and
    the points mail) are delivered: all the work the orders caused, so that none
    is left queued to slow whatever is measured next."""
    ids = [uuid.UUID(o.id) for o in orders]
    recipients = [o.email for o in orders]

    async def done() -> bool:
        [grants] = await system.query(
            "point",
            "select count(*) as n from point_ledger where kind = 'grant' and order_id = any($1)",
            ids,
        )
        [mails] = await system.query(
            "notification",
            "select count(*) as n from deliveries where recipient = any($1::text[])",
            recipients,
        )
        return bool(grants["n"] >= len(orders) and mails["n"] >= 2 * len(orders))

    if not await wait_until(done, timeout_s, 0.2):
        raise TimeoutError(f"{len(orders)} orders not settled in {timeout_s}s")


async def confirmations(system: System, orders: list[PlacedOrder]) -> dict[str, datetime]:
    """Order id → when its confirmation mail reached the mail catcher."""
    prefix = orders[0].customer_id.rsplit("-", 1)[0]
    by_subject = {f"Your order {o.id} was received": o.id for o in orders}
    found = {}
    for m in await system.mail.search_all(f'to:"{prefix}-"'):
        if m["Subject"] in by_subject:
            found[by_subject[m["Subject"]]] = datetime.fromisoformat(m["Created"])
    return found


def cpu_by_component(target: LocalTarget | KindTarget) -> dict[str, float]:
    """CPU seconds used so far by each supervised process and its children
    (PostgreSQL's backends are children of its postmaster). Local target only."""
    if not isinstance(target, LocalTarget):
        return {}
    used = {}
    for name, info in target.supervisor.processes().items():
        if info.pid:
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(info.pid).cpu_times()
                # Children that have exited and were reaped (PostgreSQL's backends
                # of closed connections) count in their parent's children_* times.
                used[name] = (
                    root.children_user
                    + root.children_system
                    + sum(sum(p.cpu_times()[:2]) for p in process_tree(info.pid) if p.is_running())
                )
    return used


async def place_many(
    system: System, prefix: str, n: int, concurrency: int
) -> tuple[list[PlacedOrder], float]:
    """`n` orders placed by `concurrency` clients as fast as they can (a 503
    retried after its Retry-After); the orders and the rate they were accepted at."""
    limit = asyncio.Semaphore(concurrency)
    tag = f"{prefix}{uuid.uuid4().hex[:6]}"

    async def one() -> PlacedOrder:
        async with limit:
            return await system.place(tag, retries=10)

    started = time.monotonic()
    orders = await asyncio.gather(*(one() for _ in range(n)))
    return orders, n / (time.monotonic() - started)


async def throughput(system: System, n: int, concurrency: int) -> tuple[float, float]:
    started = time.monotonic()
    orders, accepted = await place_many(system, "bench", n, concurrency)
    await settled(system, orders, timeout_s=600)
    return accepted, n / (time.monotonic() - started)


async def latency(system: System, rate: float, seconds: float) -> dict[str, list[float]]:
    """Per order, in ms: the points path and the confirmation mail's path, each
    split at the timestamps its hops leave behind."""
    since = await kafka.end_offsets(system.ep.kafka_bootstrap, ORDERS.topic)
    count = int(rate * seconds)
    orders = await system.traffic(f"lat{uuid.uuid4().hex[:6]}", count, rate)
    await settled(system, orders, timeout_s=300)
    rows = await system.query(
        "point",
        "select order_id::text, created_at from point_ledger where kind = 'grant'"
        " and order_id = any($1)",
        [uuid.UUID(o.id) for o in orders],
    )
    granted = {r["order_id"]: r["created_at"] for r in rows}
    records = await kafka.read(
        system.ep.kafka_bootstrap, ORDERS.topic, until=count, since=since, timeout_s=30
    )
    published = {r.key: r.timestamp for r in records if r.headers.get("ce_type") == "order.placed"}
    mailed = await confirmations(system, orders)
    # The confirmation's SendNotification: when order-relay had RabbitMQ's
    # publisher confirm (the outbox row's finished_at), and when
    # notification-service began its delivery transaction (the delivery
    # row's delivered_at is now() of that transaction, which opens with the
    # inbox and delivery inserts, before the SMTP exchange).
    sent = await system.query(
        "order",
        "select ordering_key, message_id, finished_at from outbox"
        " where message_type = 'notification.send' and ordering_key = any($1::text[])",
        [o.id for o in orders],
    )
    command = {r["ordering_key"]: r["message_id"] for r in sent}
    relayed = {r["ordering_key"]: r["finished_at"] for r in sent}
    begun = {
        r["message_id"]: r["delivered_at"]
        for r in await system.query(
            "notification",
            "select message_id, delivered_at from deliveries where message_id = any($1::uuid[])",
            list(command.values()),
        )
    }
    split: dict[str, list[float]] = defaultdict(list)
    for o in orders:
        accepted = o.created_at.timestamp()
        split["points"].append((granted[o.id].timestamp() - accepted) * 1000)
        split["relay_hop"].append(published[o.id] - accepted * 1000)
        split["consumer_hop"].append(granted[o.id].timestamp() * 1000 - published[o.id])
        split["email"].append((mailed[o.id].timestamp() - accepted) * 1000)
        started = begun[command[o.id]].timestamp()
        split["mail_relay_hop"].append((relayed[o.id].timestamp() - accepted) * 1000)
        split["mail_queue_hop"].append((started - relayed[o.id].timestamp()) * 1000)
        split["mail_send_hop"].append((mailed[o.id].timestamp() - started) * 1000)
    return split


# Each line of the latency report: the series, its label, and whose time it is.
LATENCY_LINES = (
    ("points", "accepted → points granted   ", ""),
    ("relay_hop", "  of which outbox → Kafka    ", "order-relay"),
    ("consumer_hop", "  of which Kafka → ledger    ", "point-service"),
    ("email", "accepted → mail delivered   ", ""),
    ("mail_relay_hop", "  of which outbox → RabbitMQ ", "order-relay, publisher confirm"),
    (
        "mail_queue_hop",
        "  of which queue → handler   ",
        "notification.send, waiting for the consumer",
    ),
    (
        "mail_send_hop",
        "  of which handler → SMTP   ",
        "notification-service, to the SMTP server's 250",
    ),
)


def spent_since(before: dict[str, float], target: LocalTarget | KindTarget) -> dict[str, float]:
    after = cpu_by_component(target)
    return {k: after[k] - before.get(k, 0.0) for k in after}


def client_cpu() -> float:
    """CPU seconds of this process: the load generator, not the system."""
    times = psutil.Process().cpu_times()
    return times.user + times.system


def cpu_table(spent: dict[str, float], orders: int, wall: float, client_s: float) -> float:
    """Print CPU per order per process; return the sum (ms per order)."""
    total = sum(spent.values())
    cores = os.cpu_count() or 1
    print(
        f"CPU while absorbing them: {total:.1f} s over {wall:.1f} s of wall time"
        f" on {cores} cores ({total / wall / cores:.0%} busy);"
        f" this load generator {client_s:.1f} s besides"
    )
    for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<22} {seconds:6.1f} s  {seconds * 1000 / orders:6.1f} ms/order")
    return total * 1000 / orders


async def api_alone(
    system: System, target: LocalTarget | KindTarget, n: int, concurrency: int
) -> float:
    """POST /orders as fast as `concurrency` clients can, with order-relay
    stopped so that nothing behind the API competes for the cores; then the
    relay is started again and the orders settle (untimed)."""
    await target.stop("order-relay")
    try:
        before = cpu_by_component(target)
        orders, accepted = await place_many(system, "api", n, concurrency)
        own = spent_since(before, target).get("order-service", 0.0)
    finally:
        await target.start("order-relay")
    print(
        f"API alone: {n} orders at {concurrency} clients, {accepted:.0f}/s accepted"
        f" ({system.refused} refusals retried so far)"
        + (f", order-service {own * 1000 / n:.2f} ms CPU per order" if own else "")
    )
    await settled(system, orders, timeout_s=900)
    return accepted


async def ceiling_phase(target: LocalTarget | KindTarget, orders: int) -> float:
    """bench/ceiling.py on the same components, with their CPU per order."""
    before = cpu_by_component(target)
    result = await ceiling(target.endpoints, orders)
    spent = spent_since(before, target)
    components = sum(spent.values())
    print(
        f"ceiling (raw clients, the minimal work of an order): {orders} orders,"
        f" {result.orders_per_s:.0f}/s; CPU {result.cpu_s * 1000 / orders:.1f} ms/order in"
        f" the raw clients + {components * 1000 / orders:.1f} in the components ("
        + ", ".join(
            f"{k} {v * 1000 / orders:.1f}"
            for k, v in sorted(spent.items(), key=lambda kv: -kv[1])
            if v * 1000 / orders >= 0.1
        )
        + ")"
    )
    return result.orders_per_s


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=3000, help="for the throughput phase")
    parser.add_argument("--api-orders", type=int, default=2000, help="for the API phase (0: skip)")
    parser.add_argument("--ceiling-orders", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=0, help="steady rate (0: 40%% of measured)")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument(
        "--profile",
        type=Path,
        help="record py-spy profiles of the Python processes during the throughput phase here",
    )
    args = parser.parse_args()
    target = target_from_env()
    system = System(target.endpoints)
    try:
        api = await api_alone(system, target, args.api_orders, 64) if args.api_orders else 0.0
        before, client, wall = cpu_by_component(target), client_cpu(), time.monotonic()
        with profiled(target, args.profile):
            accepted, absorbed = await throughput(system, args.orders, args.concurrency)
        spent, wall = spent_since(before, target), time.monotonic() - wall
        print(
            f"throughput: {args.orders} orders, API accepted {accepted:.0f}/s, "
            f"whole pipeline (points + mail) {absorbed:.0f}/s"
            f" ({system.refused} refusals retried so far)"
        )
        cpu_ms = cpu_table(spent, args.orders, wall, client_cpu() - client) if spent else 0.0
        await asyncio.sleep(5)
        roof = await ceiling_phase(target, args.ceiling_orders)
        rate = args.rate or max(1.0, round(absorbed * 0.4))
        split = await latency(system, rate, args.seconds)
    finally:
        await system.close()
    if args.profile:
        for name in PYTHON_PROCESSES:
            if (args.profile / f"{name}.txt").exists():
                print(summarize(args.profile / f"{name}.txt", top=12))
    p50, p99 = quantiles(split["points"])
    e50, e99 = quantiles(split["email"])
    print(f"latency at {rate:.0f} orders/s over {len(split['points'])} orders (p50 / p99, ms):")
    for key, label, owner in LATENCY_LINES:
        low, high = quantiles(split[key])
        print(f"  {label}{low:7.1f} / {high:7.1f}" + (f"  ({owner})" if owner else ""))
    print(
        f"orders_per_s={absorbed:.1f} cpu_ms_per_order={cpu_ms:.1f} api_orders_per_s={api:.0f} "
        f"ceiling_orders_per_s={roof:.1f} ratio_ceiling={absorbed / roof:.2f} "
        f"points_p99_ms={p99:.1f} email_p99_ms={e99:.1f} "
        f"points_p50_ms={p50:.1f} email_p50_ms={e50:.1f}"
    )


@contextlib.contextmanager
def profiled(target: LocalTarget | KindTarget, into: Path | None) -> Iterator[None]:
    """py-spy on each Python process of the local stack while the block runs."""
    if into is None or not isinstance(target, LocalTarget):
        yield
        return
    infos = target.supervisor.processes()
    pids = {n: infos[n].pid for n in PYTHON_PROCESSES if n in infos and infos[n].pid}
    with recording(pids, into):
        yield


if __name__ == "__main__":
    asyncio.run(main())
