"""The whole system under load (`make bench`, outside CI).

1. throughput: N orders placed as fast as 32 concurrent clients can, timed until
   the last one has its points granted and its confirmation mail delivered;
   orders/s = N / that time (what the whole pipeline absorbs, not what the API
   accepts);
2. latency: orders at a steady rate well below that, then per order:
   accepted (the order's created_at) → points granted (the ledger row's
   created_at) and → confirmation mail delivered (the mail catcher's receive
   time), all on this machine's clock. The points path is split at the Kafka
   record's timestamp (set when the relay produced it): outbox → Kafka is the
   relay's share, Kafka → ledger the consumer's.

Ends with one summary line:
`orders_per_s=X points_p50_ms=X points_p99_ms=X email_p50_ms=X email_p99_ms=X`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
import uuid
from datetime import datetime

import psutil

from bench.brokers import process_tree
from messaging.topology import ORDERS
from tests.e2e.system import PlacedOrder, System
from tests.e2e.targets import KindTarget, LocalTarget, target_from_env
from tests.support import kafka


def quantiles(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=100)
    return q[49], q[98]


async def settled(system: System, orders: list[PlacedOrder], timeout_s: float) -> None:
    """Until every order has its grant and its confirmation mail."""
    ids = [uuid.UUID(o.id) for o in orders]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        [row] = await system.query(
            "point",
            "select count(*) as n from point_ledger where kind = 'grant' and order_id = any($1)",
            ids,
        )
        if row["n"] >= len(orders):
            mails = await confirmations(system, orders)
            if len(mails) >= len(orders):
                return
        await asyncio.sleep(0.2)
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
                used[name] = sum(
                    sum(p.cpu_times()[:2]) for p in process_tree(info.pid) if p.is_running()
                )
    return used


async def throughput(system: System, n: int, concurrency: int) -> tuple[float, float]:
    limit = asyncio.Semaphore(concurrency)
    tag = f"bench{uuid.uuid4().hex[:6]}"

    async def one() -> PlacedOrder:
        async with limit:
            return await system.place(tag)

    started = time.monotonic()
    orders = await asyncio.gather(*(one() for _ in range(n)))
    accepted_s = time.monotonic() - started
    await settled(system, orders, timeout_s=600)
    return n / accepted_s, n / (time.monotonic() - started)


async def latency(
    system: System, rate: float, seconds: float
) -> tuple[list[float], list[float], list[float], list[float]]:
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
    points, email, relay_hop, consumer_hop = [], [], [], []
    for o in orders:
        accepted = o.created_at.timestamp()
        points.append((granted[o.id].timestamp() - accepted) * 1000)
        email.append((mailed[o.id].timestamp() - accepted) * 1000)
        relay_hop.append(published[o.id] - accepted * 1000)
        consumer_hop.append(granted[o.id].timestamp() * 1000 - published[o.id])
    return points, email, relay_hop, consumer_hop


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=3000, help="for the throughput phase")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=0, help="steady rate (0: 40%% of measured)")
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    target = target_from_env()
    system = System(target.endpoints)
    try:
        before, wall = cpu_by_component(target), time.monotonic()
        accepted, absorbed = await throughput(system, args.orders, args.concurrency)
        after, wall = cpu_by_component(target), time.monotonic() - wall
        print(
            f"throughput: {args.orders} orders, API accepted {accepted:.0f}/s, "
            f"whole pipeline (points + mail) {absorbed:.0f}/s"
        )
        if after:
            spent = {k: after[k] - before.get(k, 0.0) for k in after}
            total = sum(spent.values())
            print(
                f"CPU while absorbing them: {total:.1f} s over {wall:.1f} s of wall time"
                f" on {os.cpu_count()} cores ({total / wall / (os.cpu_count() or 1):.0%} busy)"
            )
            for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1])[:10]:
                print(
                    f"  {name:<22} {seconds:6.1f} s  {seconds * 1000 / args.orders:6.1f} ms/order"
                )
        await asyncio.sleep(5)
        rate = args.rate or max(1.0, round(absorbed * 0.4))
        points, email, relay_hop, consumer_hop = await latency(system, rate, args.seconds)
    finally:
        await system.close()
    p50, p99 = quantiles(points)
    e50, e99 = quantiles(email)
    r50, r99 = quantiles(relay_hop)
    c50, c99 = quantiles(consumer_hop)
    print(f"latency at {rate:.0f} orders/s over {len(points)} orders (p50 / p99, ms):")
    print(f"  accepted → points granted   {p50:7.1f} / {p99:7.1f}")
    print(f"    of which outbox → Kafka    {r50:7.1f} / {r99:7.1f}  (order-relay)")
    print(f"    of which Kafka → ledger    {c50:7.1f} / {c99:7.1f}  (point-service)")
    print(f"  accepted → mail delivered   {e50:7.1f} / {e99:7.1f}")
    print(
        f"orders_per_s={absorbed:.1f} points_p50_ms={p50:.1f} points_p99_ms={p99:.1f} "
        f"email_p50_ms={e50:.1f} email_p99_ms={e99:.1f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
