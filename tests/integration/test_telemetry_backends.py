"""Prometheus scrapes every component; Jaeger takes a span over OTLP and gives
it back through its query API."""

from __future__ import annotations

import asyncio

import httpx
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from stackctl.components import LocalStack

EXPECTED_JOBS = {"prometheus", "rabbitmq", "rabbitmq-queues", "kafka", "jaeger"}


async def test_every_prometheus_target_is_up(local_stack: LocalStack) -> None:
    url = f"http://{local_stack.s.host}:{local_stack.s.prometheus_port}/api/v1/targets"
    health: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=5) as http:
        # A component restarted by another test may miss one scrape; allow a few.
        for _ in range(30):
            targets = (await http.get(url)).json()["data"]["activeTargets"]
            health = {t["labels"]["job"]: t["health"] for t in targets}
            if set(health.values()) == {"up"}:
                break
            await asyncio.sleep(1)
    assert set(health) >= EXPECTED_JOBS, f"missing scrape jobs: {EXPECTED_JOBS - set(health)}"
    assert {job for job, h in health.items() if h != "up"} == set()


async def test_a_span_sent_over_otlp_comes_back_from_the_query_api(
    local_stack: LocalStack,
) -> None:
    s = local_stack.s
    provider = TracerProvider(resource=Resource.create({"service.name": "it-probe"}))
    exporter = OTLPSpanExporter(
        endpoint=f"http://{s.host}:{s.jaeger_otlp_grpc_port}", insecure=True
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("integration").start_as_current_span("probe-span") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()

    url = f"http://{s.host}:{s.jaeger_query_port}/api/traces/{trace_id}"
    async with httpx.AsyncClient(timeout=5) as http:
        for _ in range(50):
            response = await http.get(url)
            if response.status_code == 200:
                break
            await asyncio.sleep(0.2)
    assert response.status_code == 200, response.text
    trace = response.json()["data"][0]
    assert trace["traceID"] == trace_id
    assert [span["operationName"] for span in trace["spans"]] == ["probe-span"]
    process = trace["processes"][trace["spans"][0]["processID"]]
    assert process["serviceName"] == "it-probe"
