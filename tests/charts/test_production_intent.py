"""Offline tests of what the chart means to do in production, asserted on the
rendered objects rather than left to the golden files: the Kubernetes floor
the pods' fields need, how a service pod stops, what a node drain and an
autoscaler may do, and the infrastructure pods' quirks (Kafka's log
directory, RabbitMQ's cookie, PostgreSQL's readiness)."""

from __future__ import annotations

from typing import Any

import yaml

from tests.charts.test_values import renders
from tests.charts.test_wiring import CHART, SERVICE_CONTAINERS, by_kind, render


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
