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
   every service and relay it crossed, joined parent to child at every broker
   hop (docs/observability.md: parent/child, not span links).

Panels and the trace are awaited together: both wait for the same traffic.
Ends with one line: `panels_with_data=N/M alert_rules_loaded=N trace_services=a,b,c`.
tests/integration/test_observability.py asserts on the same `Verification`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from catalogue.services import PROCESSES
from catalogue.topology import ORDERS
from tests.e2e.system import PlacedOrder, System
from tests.e2e.targets import Endpoints, target_from_env
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "observability" / "dashboards"
RULES = ROOT / "deploy" / "observability" / "rules"
TRACE_SERVICES = frozenset(PROCESSES)
ROOT_SPAN = ("order-service", "POST /orders")
SMTP_SPAN = "smtp send"
# What Grafana would put for $__rate_interval at a 5 s scrape interval, rounded up.
RATE_INTERVAL = "1m"


@dataclass(frozen=True)
class Panel:
    dashboard: str
    title: str
    exprs: list[str]


@dataclass(frozen=True)
class Span:
    id: str
    service: str
    operation: str
    kind: str
    # (reference type, span id): CHILD_OF is the parent, FOLLOWS_FROM a span link
    references: tuple[tuple[str, str], ...]

    @property
    def parent(self) -> str | None:
        parents = [span for ref, span in self.references if ref == "CHILD_OF"]
        return parents[0] if len(parents) == 1 else None


@dataclass
class Trace:
    id: str
    spans: list[Span] = field(default_factory=list)

    @property
    def services(self) -> set[str]:
        return {s.service for s in self.spans}

    def by_id(self) -> dict[str, Span]:
        return {s.id: s for s in self.spans}

    def parent_of(self, span: Span) -> Span | None:
        return self.by_id().get(span.parent or "")


@dataclass(frozen=True)
class Driven:
    order: PlacedOrder
    # message id of the malformed SendNotification that notification-service dead-letters
    poison_command_id: str


@dataclass
class Verification:
    driven: Driven
    panels: list[Panel]
    empty: list[Panel]
    rules_expected: list[str]
    rules_health: dict[str, str]
    trace: Trace

    @property
    def rules_loaded(self) -> list[str]:
        return [name for name in self.rules_expected if self.rules_health.get(name) == "ok"]

    @property
    def trace_problems(self) -> list[str]:
        return hop_problems(self.trace)

    @property
    def ok(self) -> bool:
        return (
            not self.empty
            and len(self.rules_loaded) == len(self.rules_expected)
            and not self.trace_problems
        )

    @property
    def summary(self) -> str:
        return (
            f"panels_with_data={len(self.panels) - len(self.empty)}/{len(self.panels)} "
            f"alert_rules_loaded={len(self.rules_loaded)} "
            f"trace_services={','.join(sorted(self.trace.services))}"
        )


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
    async def has_data(panel: Panel) -> bool:
        counts = await asyncio.gather(*(series(prometheus, expr) for expr in panel.exprs))
        return any(counts)

    found = await asyncio.gather(*(has_data(panel) for panel in all_panels))
    return [panel for panel, data in zip(all_panels, found, strict=True) if not data]


async def settled_empty_panels(
    prometheus: httpx.AsyncClient, all_panels: list[Panel], settle_s: float
) -> list[Panel]:
    """Panels still without data once the traffic had `settle_s` to show."""
    return await eventually(
        lambda: empty_panels(prometheus, all_panels), lambda empty: not empty, settle_s, 2
    )


async def loaded_rules(prometheus: httpx.AsyncClient) -> dict[str, str]:
    """Alert name → health, as Prometheus evaluates them."""
    response = await prometheus.get("/api/v1/rules", params={"type": "alert"})
    response.raise_for_status()
    return {
        rule["name"]: rule["health"]
        for group in response.json()["data"]["groups"]
        for rule in group["rules"]
    }


async def drive(system: System) -> Driven:
    """Traffic for every panel; returns the order whose trace is checked."""
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
    # A duplicate (skipped by the inbox) and a poison message (dead-lettered).
    await system.produce_raw(ORDERS.topic, record.key, record.raw, record.headers)
    await system.produce_raw(
        ORDERS.topic,
        "obs-poison",
        b"{not json",
        {"ce_id": str(uuid.uuid4()), "ce_type": "order.placed", "ce_source": "verify"},
    )
    poison_command_id = await system.send_raw_notification("{not json")
    return Driven(orders[0], poison_command_id)


async def order_trace_id(system: System, order: PlacedOrder) -> str:
    """The trace of the order's POST, as its outbox row carries it."""
    [row] = await system.query(
        "order",
        "select headers->'trace'->>'traceparent' as tp from outbox"
        " where ordering_key = $1 and message_type = 'order.placed'",
        order.id,
    )
    return str(row["tp"].split("-")[1])


def parse_trace(data: dict[str, Any]) -> Trace:
    processes = data["processes"]
    spans = []
    for s in data["spans"]:
        tags = {t["key"]: t["value"] for t in s.get("tags", [])}
        refs = tuple((r["refType"], r["spanID"]) for r in s.get("references", []))
        spans.append(
            Span(
                s["spanID"],
                processes[s["processID"]]["serviceName"],
                s["operationName"],
                str(tags.get("span.kind", "")),
                refs,
            )
        )
    return Trace(data["traceID"], spans)


def hop_problems(trace: Trace) -> list[str]:
    """What in `trace` breaks "one order = one trace, parent/child at every hop".

    Empty when: one root (the order's POST), every other span has exactly one
    parent in the trace and no span link; order-relay published both of the
    order's messages as children of order-service, point-service consumed as a
    child of order-relay's publish, point-relay published as a child of
    point-service, notification-service consumed as a child of both relays'
    publishes (the order mail and the points mail), and each mail's SMTP span
    is a child of its consumer span.
    """
    problems = [f"no spans of {s}" for s in sorted(TRACE_SERVICES - trace.services)]
    spans = trace.by_id()
    roots = [s for s in trace.spans if not s.references]
    if [(r.service, r.operation) for r in roots] != [ROOT_SPAN]:
        problems.append(f"roots are {[(r.service, r.operation) for r in roots]}, not {ROOT_SPAN}")
    for s in trace.spans:
        if s.references and (s.parent is None or s.parent not in spans):
            problems.append(f"{s.service} {s.operation!r} has no parent in the trace")
        if any(ref != "CHILD_OF" for ref, _ in s.references):
            problems.append(f"{s.service} {s.operation!r} has a span link: {s.references}")

    def ancestors(span: Span) -> list[Span]:
        chain: list[Span] = []
        while (parent := trace.parent_of(span)) is not None and len(chain) < len(spans):
            chain.append(parent)
            span = parent
        return chain

    def consumed_from(service: str) -> set[str]:
        """Services whose producer span is the parent of a consumer span of `service`."""
        return {
            parent.service
            for s in trace.spans
            if s.service == service
            and s.kind == "consumer"
            and (parent := trace.parent_of(s)) is not None
            and parent.kind == "producer"
        }

    for relay, origin in (("order-relay", "order-service"), ("point-relay", "point-service")):
        producers = [s for s in trace.spans if s.service == relay and s.kind == "producer"]
        if len(producers) < 2:
            problems.append(f"{relay}: {len(producers)} publish span(s), expected 2")
        problems.extend(
            f"{relay} {s.operation!r} does not descend from {origin}"
            for s in producers
            if origin not in {a.service for a in ancestors(s)}
        )
    if consumed_from("point-service") != {"order-relay"}:
        problems.append("point-service's consume span is not a child of order-relay's publish")
    if consumed_from("notification-service") != {"order-relay", "point-relay"}:
        problems.append(
            "notification-service's consume spans are not children of both relays' publishes"
            f" (found: {sorted(consumed_from('notification-service'))})"
        )
    smtp = [s for s in trace.spans if s.operation == SMTP_SPAN]
    if len(smtp) < 2:
        problems.append(f"{len(smtp)} {SMTP_SPAN!r} span(s), expected 2 (order and points mail)")
    for s in smtp:
        parent = trace.parent_of(s)
        if parent is None or (parent.service, parent.kind) != ("notification-service", "consumer"):
            problems.append(f"{SMTP_SPAN!r} is not a child of notification-service's consume span")
    return problems


async def wait_for_trace(jaeger: httpx.AsyncClient, trace_id: str, timeout_s: float) -> Trace:
    """The trace once it is whole (or as it is at the deadline): spans arrive in
    batches, per process, as each hop finishes."""
    trace = Trace(trace_id)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = await jaeger.get(f"/api/traces/{trace_id}")
        if response.status_code == 200 and response.json().get("data"):
            trace = parse_trace(response.json()["data"][0])
            if not hop_problems(trace):
                break
        await asyncio.sleep(1)
    return trace


async def verify(endpoints: Endpoints, settle_s: float = 90) -> Verification:
    system = System(endpoints)
    prometheus = httpx.AsyncClient(base_url=endpoints.prometheus, timeout=10)
    jaeger = httpx.AsyncClient(base_url=endpoints.jaeger_query, timeout=10)
    try:
        driven = await drive(system)
        trace_id = await order_trace_id(system, driven.order)
        all_panels = panels()
        empty, trace = await asyncio.gather(
            settled_empty_panels(prometheus, all_panels, settle_s),
            wait_for_trace(jaeger, trace_id, timeout_s=60),
        )
        return Verification(
            driven, all_panels, empty, expected_rules(), await loaded_rules(prometheus), trace
        )
    finally:
        await system.close()
        await prometheus.aclose()
        await jaeger.aclose()


def report(result: Verification) -> None:
    for panel in result.empty:
        print(f"no data: {panel.dashboard} / {panel.title}: {panel.exprs}")
    for name in sorted(set(result.rules_expected) - set(result.rules_loaded)):
        health = result.rules_health.get(name, "absent")
        print(f"alert rule not loaded or failing: {name} ({health})")
    for problem in result.trace_problems:
        print(f"trace {result.trace.id}: {problem}")
    print(result.summary)


def main() -> None:
    started = time.monotonic()
    result = asyncio.run(verify(target_from_env().endpoints))
    print(f"checked in {time.monotonic() - started:.0f}s")
    report(result)
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
