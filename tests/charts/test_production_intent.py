"""Offline tests of what the chart means to do in production, asserted on the
rendered objects rather than left to the golden files: the Kubernetes floor
the pods' fields need, how a service pod stops, what a node drain and an
autoscaler may do, and the infrastructure pods' quirks (Kafka's log
directory, RabbitMQ's cookie, PostgreSQL's readiness)."""

from __future__ import annotations

from typing import Any

import yaml

from tests.charts.test_secure_connections import egress_ports
from tests.charts.test_values import renders
from tests.charts.test_wiring import CHART, SERVICE_CONTAINERS, by_kind, render, render_with


def services(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Deployment name -> pod spec, for the three services."""
    return {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]
        for d in by_kind(docs, "Deployment")
        if d["spec"]["template"]["spec"]["containers"][0]["name"] in SERVICE_CONTAINERS
    }


def test_the_kubernetes_floor_is_where_the_prestop_sleep_action_is_on() -> None:
    """The preStop `sleep` action (PodLifecycleSleepAction) is alpha, off, in
    1.29: its API server silently drops the field, and a stopping pod would
    get SIGTERM while it still receives traffic. Beta and on from 1.30."""
    assert any(
        "sleep" in spec["containers"][0]["lifecycle"]["preStop"]
        for spec in services(render("default")).values()
    ), "the chart uses the sleep action"
    kube_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    assert kube_version == ">=1.30.0-0"
    refused = renders(["--kube-version", "1.29.15"])
    assert refused.returncode != 0
    assert "chart requires kubeVersion" in refused.stderr
    assert renders(["--kube-version", "1.30.0"]).returncode == 0


def test_network_policy_egress_follows_the_configured_endpoints() -> None:
    """Every endpoint on a port of its own: each client's policy lets out
    exactly DNS and the ports of what it connects to, none of the defaults."""
    docs = render_with(
        [
            "--set", "kafka.enabled=false",
            "--set", "kafka.bootstrapServers=k1.data:9093\\,k2.data:9093\\,k3.data:9095",
            "--set", "postgresql.enabled=false",
            "--set", "postgresql.host=pg.data",
            "--set", "postgresql.port=6432",
            "--set", "rabbitmq.enabled=false",
            "--set", "rabbitmq.host=rabbitmq.data",
            "--set", "rabbitmq.port=5673",
            "--set", "rabbitmq.managementUrl=https://rabbitmq.data:15671",
            "--set", "mailpit.enabled=false",
            "--set", "mailpit.smtpHost=smtp.example.com",
            "--set", "mailpit.smtpPort=587",
            "--set", "otel.endpoint=http://collector.observability:4319",
        ]
    )  # fmt: skip
    dns, postgresql, rabbitmq, otlp, kafka = {53}, {6432}, {5673}, {4319}, {9093, 9095}
    assert {
        name: ports
        for name, ports in egress_ports(docs).items()
        if name.endswith(("-service", "-provision"))
    } == {
        "reference-order-service": dns | postgresql | rabbitmq | otlp | kafka,
        "reference-point-service": dns | postgresql | rabbitmq | otlp | kafka,
        "reference-notification-service": dns | postgresql | rabbitmq | otlp | {587},
        "reference-provision": dns | postgresql | rabbitmq | {15671} | kafka,
    }
