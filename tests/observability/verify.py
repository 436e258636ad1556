"""`make verify-observability`: the dashboards, the alert rules and the traces,
checked against the real Prometheus and the real tracing backend.

1. Drives traffic through the system's own doors: orders (one cancelled),
   customer summaries, a duplicate and a poison message on `orders` (kcat), a
   malformed command on `notification.send` (the management API), so that
   every series a panel shows exists.
2. Evaluates every panel query of every committed dashboard against
   Prometheus; a panel with no series fails.
3. Every alert rule of deploy/observability/rules/ is loaded and evaluates
   without error (Prometheus' rules API).
4. The trace of one order, fetched from Jaeger's query API, holds spans of
   every service and relay it crossed.

Ends with one line: `panels_with_data=N/M alert_rules_loaded=N trace_services=a,b,c`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from messaging.topology import NOTIFICATION_SEND, ORDERS
from tests.e2e.system import PlacedOrder, System
from tests.e2e.targets import Endpoints, target_from_env

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "observability" / "dashboards"
RULES = ROOT / "deploy" / "observability" / "rules"
TRACE_SERVICES = {
    "order-service",
    "order-relay",
    "point-service",
    "point-relay",
    "notification-service",
}
SMTP_SPAN = "smtp send"
# What Grafana would put for $__rate_interval at a 5 s scrape interval, rounded up.
RATE_INTERVAL = "1m"


@dataclass(frozen=True)
class Panel:
    dashboard: str
    title: str
    exprs: list[str]


def panels() -> list[Panel]:
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            if panel.get("type") == "row":
                continue
            exprs = [t["expr"] for t in panel.get("targets", [])]
            found.append(Panel(dashboard["title"], panel["title"], exprs))
    return found


def expected_rules() -> list[str]:
    names = []
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names += [rule["alert"] for rule in group["rules"] if "alert" in rule]
    return names


async def series(prometheus: httpx.AsyncClient, expr: str) -> int:
    response = await prometheus.get(
        "/api/v1/query", params={"query": expr.replace("$__rate_interval", RATE_INTERVAL)}
    )
    response.raise_for_status()
    return len(response.json()["data"]["result"])


async def empty_panels(prometheus: httpx.AsyncClient, all_panels: list[Panel]) -> list[Panel]:
    empty = []
    for panel in all_panels:
        counts = [await series(prometheus, expr) for expr in panel.exprs]
        if not any(counts):
            empty.append(panel)
    return empty


async def loaded_rules(prometheus: httpx.AsyncClient) -> dict[str, str]:
    """Alert name → health, as Prometheus evaluates them."""
    response = await prometheus.get("/api/v1/rules", params={"type": "alert"})
    response.raise_for_status()
    return {
        rule["name"]: rule["health"]
        for group in response.json()["data"]["groups"]
        for rule in group["rules"]
    }


async def drive(system: System) -> PlacedOrder:
    orders = [await system.place("obs") for _ in range(8)]
    await system.cancel(orders[-1])
    for order in orders[:3]:
        await system.summary(order.customer_id)
    record = None
    deadline = time.monotonic() + 30
    while record is None and time.monotonic() < deadline:
        record = await system.placed_record(orders[0].id)
    if record is None:
        raise SystemExit(f"order {orders[0].id} never reached {ORDERS.topic}")
    await system.produce_raw(ORDERS.topic, record.key, record.raw, record.headers)
    await system.produce_raw(
        ORDERS.topic,
        "obs-poison",
        b"{not json",
        {"ce_id": str(uuid.uuid4()), "ce_type": "order.placed", "ce_source": "verify"},
    )
    await system.rabbit.publish(
        NOTIFICATION_SEND.exchange,
        NOTIFICATION_SEND.routing_key,
        "{not json",
        properties={"message_id": str(uuid.uuid4())},
    )
    return orders[0]


async def trace_of(
    system: System, order: PlacedOrder, jaeger: httpx.AsyncClient
) -> tuple[set[str], set[str]]:
    """Services and operations in the trace of the order's POST, found through
    the trace context its outbox rows carry."""
    [row] = await system.query(
        "order",
        "select headers->'trace'->>'traceparent' as tp from outbox"
        " where ordering_key = $1 and message_type = 'order.placed'",
        order.id,
    )
    trace_id = row["tp"].split("-")[1]
    services: set[str] = set()
    operations: set[str] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = await jaeger.get(f"/api/traces/{trace_id}")
        if response.status_code == 200 and response.json().get("data"):
            data: dict[str, Any] = response.json()["data"][0]
            processes = data["processes"]
            services = {processes[s["processID"]]["serviceName"] for s in data["spans"]}
            operations = {s["operationName"] for s in data["spans"]}
            if services >= TRACE_SERVICES and SMTP_SPAN in operations:
                break
        await asyncio.sleep(1)
    return services, operations


async def verify(endpoints: Endpoints, settle_s: float = 90) -> tuple[str, bool]:
    system = System(endpoints)
    prometheus = httpx.AsyncClient(base_url=endpoints.prometheus, timeout=10)
    jaeger = httpx.AsyncClient(base_url=endpoints.jaeger_query, timeout=10)
    try:
        order = await drive(system)
        all_panels = panels()
        deadline = time.monotonic() + settle_s
        while True:
            empty = await empty_panels(prometheus, all_panels)
            if not empty or time.monotonic() > deadline:
                break
            await asyncio.sleep(3)
        for panel in empty:
            print(f"no data: {panel.dashboard} / {panel.title}: {panel.exprs}")
        expected = expected_rules()
        health = await loaded_rules(prometheus)
        loaded = [name for name in expected if health.get(name) == "ok"]
        for name in sorted(set(expected) - set(loaded)):
            print(f"alert rule not loaded or failing: {name} ({health.get(name, 'absent')})")
        services, operations = await trace_of(system, order, jaeger)
        missing = TRACE_SERVICES - services
        if missing:
            print(f"the order's trace lacks spans of: {', '.join(sorted(missing))}")
        if SMTP_SPAN not in operations:
            missing.add(f"the {SMTP_SPAN!r} span")
            print(f"the order's trace has no {SMTP_SPAN!r} span (the SMTP hop)")
    finally:
        await system.close()
        await prometheus.aclose()
        await jaeger.aclose()
    ok = not empty and len(loaded) == len(expected) and not missing
    summary = (
        f"panels_with_data={len(all_panels) - len(empty)}/{len(all_panels)} "
        f"alert_rules_loaded={len(loaded)} trace_services={','.join(sorted(services))}"
    )
    return summary, ok


def main() -> None:
    summary, ok = asyncio.run(verify(target_from_env().endpoints))
    print(summary)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
