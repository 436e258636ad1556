"""Offline tests of the chart's wiring against the code it deploys: the
environment each container gets is exactly what its settings class reads,
ports and probes are what the apps serve, the relay sidecar is where an outbox
is, and nothing renders empty. Rendered with helm for both values files."""

from __future__ import annotations

import functools
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.sdk.trace import TracerProvider
from pydantic_settings import BaseSettings

from messaging.accounts import AccountsSettings
from messaging.asyncapi import placeholder_settings
from messaging.relay.cli import health_app
from messaging.relay.relay import OutboxRelay
from messaging.relay.settings import RelaySettings
from messaging.topology import ORDERS, TOPICS, ProvisionSettings
from notification_service.entrypoints.app import create_app as notification_app
from notification_service.settings import NotificationServiceSettings
from order_service.entrypoints.http import create_app as order_app
from order_service.settings import OrderServiceSettings
from point_service.entrypoints.app import create_app as point_app
from point_service.settings import PointServiceSettings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "reference-system"
HELM = ROOT / ".tools" / "bin" / "helm"
VALUES = {"default": [], "production": ["-f", str(ROOT / "deploy/helm/values-production.yaml")]}

SETTINGS: dict[str, type[BaseSettings]] = {
    "order-service": OrderServiceSettings,
    "point-service": PointServiceSettings,
    "notification-service": NotificationServiceSettings,
    "outbox-relay": RelaySettings,
    "accounts": AccountsSettings,
    "topology": ProvisionSettings,
}
SERVICE_CONTAINERS = {"order-service", "point-service", "notification-service"}


def render(label: str) -> list[dict[str, Any]]:
    if not HELM.exists():
        pytest.fail(f"{HELM} missing: run `make tools`")
    out = subprocess.run(
        [
            str(HELM),
            "template",
            "reference",
            str(CHART),
            *VALUES[label],
            "--kube-version",
            "1.31.0",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="module", params=list(VALUES))
def docs(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    specs = []
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            specs.append((d["metadata"]["name"], d["spec"]["template"]["spec"]))
        elif d["kind"] == "Pod":
            specs.append((d["metadata"]["name"], d["spec"]))
    return specs


def env_names(container: dict[str, Any], configmaps: dict[str, dict[str, str]]) -> set[str]:
    names = {e["name"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        names |= set(configmaps[source["configMapRef"]["name"]])
    return names


def variables(cls: type[BaseSettings]) -> tuple[set[str], set[str]]:
    """(required, all) environment variable names of a settings class."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    fields = cls.model_fields
    every = {(prefix + name).upper() for name in fields}
    required = {(prefix + name).upper() for name, f in fields.items() if f.is_required()}
    return required, every


def test_every_container_gets_exactly_what_its_settings_class_reads(
    docs: list[dict[str, Any]],
) -> None:
    configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in by_kind(docs, "ConfigMap")}
    checked = 0
    for pod, spec in pod_specs(docs):
        for container in spec.get("initContainers", []) + spec["containers"]:
            name = container["name"]
            cls = SETTINGS.get("order-service" if name == "migrate" else name)
            if name == "migrate":
                cls = SETTINGS[next(c["name"] for c in spec["containers"])]
            if cls is None:
                continue
            required, every = variables(cls)
            got = env_names(container, configmaps)
            assert required <= got, f"{pod}/{name} lacks {sorted(required - got)}"
            assert got <= every, f"{pod}/{name} sets unknown {sorted(got - every)}"
            checked += 1
    # Three apps and their migrations, two relays, two provisioning steps.
    assert checked == 10


@functools.cache
def served_paths() -> dict[str, set[str]]:
    """The HTTP paths each container's app serves, read from the apps themselves
    (built with placeholder settings; nothing connects)."""
    values = placeholder_settings()
    order = order_app(OrderServiceSettings.model_validate(values))
    point = point_app(PointServiceSettings.model_validate(values), TracerProvider())
    notification = notification_app(
        NotificationServiceSettings.model_validate(values), TracerProvider()
    )
    relay = health_app(OutboxRelay(RelaySettings.model_validate(values)))
    return {
        "order-service": {str(getattr(route, "path", "")) for route in order.routes},
        "point-service": {path for path, _ in point.routes},
        "notification-service": {path for path, _ in notification.routes},
        "outbox-relay": {str(getattr(route, "path", "")) for route in relay.routes},
    }


def test_ports_and_probes_are_what_the_apps_serve(docs: list[dict[str, Any]]) -> None:
    configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in by_kind(docs, "ConfigMap")}
    for deployment in by_kind(docs, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            if container["name"] not in SERVICE_CONTAINERS | {"outbox-relay"}:
                continue
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            [configmap] = [s["configMapRef"]["name"] for s in container["envFrom"]]
            assert list(ports.values()) == [int(configmaps[configmap]["HTTP_PORT"])], (
                f"{container['name']} listens where HTTP_PORT says"
            )
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                action = container[probe]["httpGet"]
                served = served_paths()[container["name"]]
                assert action["path"] in served, f"{container['name']} {probe} {action['path']}"
                assert action["port"] in ports, f"{container['name']} {probe} port"


def services_with_an_outbox() -> set[str]:
    found = set()
    for migration in ROOT.glob("services/*/src/*/migrations/versions/*.py"):
        if "messaging.outbox" in migration.read_text():
            found.add(f"{migration.parts[-6]}-service")
    return found


def test_the_relay_sidecar_runs_exactly_where_an_outbox_exists(docs: list[dict[str, Any]]) -> None:
    outboxes = services_with_an_outbox()
    assert outboxes == {"order-service", "point-service"}
    for deployment in by_kind(docs, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        app = spec["containers"][0]["name"]
        if app not in SERVICE_CONTAINERS:
            continue
        init = {c["name"]: c for c in spec.get("initContainers", [])}
        if app in outboxes:
            relay = init["outbox-relay"]
            assert relay.get("restartPolicy") == "Always", "a native sidecar"
            names = list(init)
            assert names.index("migrate") < names.index("outbox-relay"), "after the migrations"
        else:
            assert "outbox-relay" not in init


def test_no_configmap_renders_empty(docs: list[dict[str, Any]]) -> None:
    for configmap in by_kind(docs, "ConfigMap"):
        data = configmap.get("data") or {}
        assert data, f"{configmap['metadata']['name']} is empty"
        for key, value in data.items():
            assert value.strip(), f"{configmap['metadata']['name']}/{key} is empty"
    dashboards = [
        c for c in by_kind(docs, "ConfigMap") if "grafana_dashboard" in c["metadata"]["labels"]
    ]
    shipped = sorted(p.name for p in (ROOT / "deploy/observability/dashboards").glob("*.json"))
    assert sorted(k for c in dashboards for k in c["data"]) == shipped
    for c in dashboards:
        for text in c["data"].values():
            assert json.loads(text)["panels"], "a dashboard with panels"
    [rules] = [
        c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"].endswith("alert-rules")
    ]
    shipped = sorted(p.name for p in (ROOT / "deploy/observability/rules").glob("*.yml"))
    assert sorted(rules["data"]) == shipped, "every rules file of deploy/observability"
    for name, text in rules["data"].items():
        groups = yaml.safe_load(text)["groups"]
        assert sum(len(g["rules"]) for g in groups) > 0, f"{name} holds rules"


def test_kafka_consumers_scale_no_further_than_the_partitions_of_orders(
    docs: list[dict[str, Any]],
) -> None:
    """A consumer in a group beyond the partition count gets no partition: an
    autoscaler of point-service (the consumer of `orders`) must stop there."""
    [orders] = [t for t in TOPICS if t.name == ORDERS.topic]
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"]
        for h in by_kind(docs, "HorizontalPodAutoscaler")
    }
    point = next(
        d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-point-service")
    )
    name = point["metadata"]["name"]
    if name in hpas:
        assert hpas[name]["maxReplicas"] <= orders.partitions, (
            f"{name} HPA above {orders.partitions}"
        )
    else:
        assert point["spec"]["replicas"] <= orders.partitions


def test_credentials_are_only_in_secrets(docs: list[dict[str, Any]]) -> None:
    secret_like = re.compile(r"PASSWORD|SECRET|TOKEN", re.IGNORECASE)
    for configmap in by_kind(docs, "ConfigMap"):
        for key in configmap.get("data", {}):
            assert not secret_like.search(key), f"{configmap['metadata']['name']} holds {key}"
    for _, spec in pod_specs(docs):
        for container in spec.get("initContainers", []) + spec["containers"]:
            for env in container.get("env", []):
                if secret_like.search(env["name"]):
                    assert "secretKeyRef" in env.get("valueFrom", {}), env["name"]
        assert spec.get("automountServiceAccountToken") is False
