"""Observability against the real backends of the local stack: Prometheus
scrapes every service and relay and loads the alert rules, every dashboard
panel has data, an alert fires on a real dead letter, one order is one trace
joined parent to child at every broker hop (docs/observability.md), and a log
line leads to its trace.

The traffic is driven once for the module (tests/observability/verify.py, the
same run `make verify-observability` does on its own).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from catalogue.topology import ORDERS
from stackctl.components import LocalStack
from tests.e2e.targets import LocalTarget
from tests.observability.verify import (
    RULES,
    TRACE_SERVICES,
    Span,
    Trace,
    Verification,
    hop_problems,
    verify,
)

APPS = sorted(TRACE_SERVICES)
# Prefixes of the metrics this project defines (the rest come from libraries
# and runtimes, whose conventions are theirs).
OWN_PREFIXES = (
    "outbox_",
    "messaging_",
    "notification_",
    "points_",
    "order_",
    "kafka_consumer_",
    "http_request",
    "faststream_",
)
# Labels whose values come from ids would make series unbounded.
ID_LABELS = {"id", "order_id", "customer_id", "message_id", "correlation_id", "trace_id"}
MAX_SERIES_PER_FAMILY = 200
UNITS = ("_seconds", "_bytes", "_messages")


def same_files(loaded: Iterable[str], committed: Iterable[Path]) -> bool:
    return {Path(f).resolve() for f in loaded} == {f.resolve() for f in committed}


@pytest.fixture(scope="module")
def prometheus_url(local_stack: LocalStack) -> str:
    return f"http://{local_stack.s.host}:{local_stack.s.prometheus_port}"


@pytest.fixture(scope="module")
async def verification(local_stack: LocalStack) -> Verification:
    return await verify(LocalTarget().endpoints, settle_s=60)


async def test_every_service_and_relay_is_scraped_and_up(prometheus_url: str) -> None:
    health: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=prometheus_url, timeout=5) as http:
        # A component restarted by another test may miss one scrape; allow a few.
        for _ in range(30):
            targets = (await http.get("/api/v1/targets")).json()["data"]["activeTargets"]
            health = {t["labels"]["job"]: t["health"] for t in targets}
            if all(health.get(app) == "up" for app in APPS):
                break
            await asyncio.sleep(1)
    assert {app: health.get(app, "not scraped") for app in APPS} == dict.fromkeys(APPS, "up")


async def test_prometheus_loads_every_alert_rule_of_the_rule_files(
    prometheus_url: str, verification: Verification
) -> None:
    async with httpx.AsyncClient(base_url=prometheus_url, timeout=5) as http:
        groups = (await http.get("/api/v1/rules")).json()["data"]["groups"]
    assert same_files([group["file"] for group in groups], RULES.glob("*.yml"))
    assert verification.rules_expected, "no alert rules found in deploy/observability/rules"
    assert {name: verification.rules_health.get(name) for name in verification.rules_expected} == (
        dict.fromkeys(verification.rules_expected, "ok")
    )


async def test_every_dashboard_panel_returns_data(verification: Verification) -> None:
    assert len(verification.panels) > 20
    assert [f"{p.dashboard} / {p.title}" for p in verification.empty] == []


async def test_one_order_is_one_trace_joined_parent_to_child(verification: Verification) -> None:
    assert verification.trace.services == TRACE_SERVICES
    assert hop_problems(verification.trace) == []


async def test_a_dead_lettered_message_fires_its_alert(
    prometheus_url: str, verification: Verification
) -> None:
    """The poison message the traffic put on `orders` makes MessagesDeadLettered
    fire in the real Prometheus (no `for`: at the next evaluations)."""
    firing: list[dict[str, str]] = []
    async with httpx.AsyncClient(base_url=prometheus_url, timeout=5) as http:
        for _ in range(30):
            alerts = (await http.get("/api/v1/alerts")).json()["data"]["alerts"]
            firing = [
                a["labels"]
                for a in alerts
                if a["labels"]["alertname"] == "MessagesDeadLettered" and a["state"] == "firing"
            ]
            if any(f.get("source") == ORDERS.topic and f.get("reason") == "poison" for f in firing):
                break
            await asyncio.sleep(1)
    assert any(
        (f.get("job"), f.get("source"), f.get("reason"))
        == ("point-service", ORDERS.topic, "poison")
        for f in firing
    ), firing


async def test_a_log_line_carries_the_ids_of_its_span(
    local_stack: LocalStack, verification: Verification
) -> None:
    """notification-service's JSON log line about the malformed command names
    the trace and span it was written in, and Jaeger has that span."""
    log = local_stack.s.log_dir / "notification-service.log"
    needle = f"dead-lettering message {verification.driven.poison_command_id}"
    line: dict[str, str] = {}
    for _ in range(20):
        lines = [json.loads(raw) for raw in log.read_text().splitlines() if needle in raw]
        if lines:
            line = lines[-1]
            break
        await asyncio.sleep(0.5)
    assert line, f"no log line with {needle!r} in {log}"
    assert line["trace_id"], line
    assert line["span_id"], line
    url = f"http://{local_stack.s.host}:{local_stack.s.jaeger_query_port}"
    spans: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        for _ in range(30):
            response = await http.get(f"/api/traces/{line['trace_id']}")
            if response.status_code == 200:
                data = response.json()["data"][0]
                spans = {
                    s["spanID"]: data["processes"][s["processID"]]["serviceName"]
                    for s in data["spans"]
                }
                if line["span_id"] in spans:
                    break
            await asyncio.sleep(1)
    assert spans.get(line["span_id"]) == "notification-service", spans


@pytest.mark.parametrize("app", APPS)
async def test_own_metrics_follow_the_conventions(local_stack: LocalStack, app: str) -> None:
    """Distributions carry their unit in the name, no label carries an id, and
    no family grows past a bound (label values come from fixed sets:
    destinations, outcomes, kinds, routes). Counters end in _total by
    construction (prometheus-client appends it)."""
    port = getattr(local_stack.s, f"{app.replace('-', '_')}_port")
    url = f"http://{local_stack.s.host}:{port}/metrics"
    async with httpx.AsyncClient(timeout=5, follow_redirects=True) as http:
        body = (await http.get(url)).text
    own = [
        family
        for family in text_string_to_metric_families(body)
        if family.name.startswith(OWN_PREFIXES)
    ]
    assert own, f"{app} exports none of the project's metrics"
    distributions = [f.name for f in own if f.type in ("histogram", "summary")]
    assert [n for n in distributions if not n.endswith(UNITS)] == []
    labels = {key for f in own for sample in f.samples for key in sample.labels}
    assert sorted(labels & ID_LABELS) == []
    series = {f.name: len({tuple(s.labels.items()) for s in f.samples}) for f in own}
    assert {name: n for name, n in series.items() if n > MAX_SERIES_PER_FAMILY} == {}


def test_the_trace_check_rejects_a_trace_joined_by_span_links() -> None:
    """The check the tests above rely on fails a trace where the consumer
    starts its own root and links to the producer (the alternative not chosen)."""
    spans = [
        Span("a", "order-service", "POST /orders", "server", ()),
        Span("b", "order-relay", "orders publish", "producer", (("CHILD_OF", "a"),)),
        Span("c", "point-service", "orders process", "consumer", (("FOLLOWS_FROM", "b"),)),
    ]
    problems = hop_problems(Trace("t", spans))
    assert any("span link" in p for p in problems), problems
    assert any("not a child of order-relay" in p for p in problems), problems
    assert any("no spans of notification-service" in p for p in problems), problems
