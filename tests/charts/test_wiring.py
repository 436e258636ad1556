"""Offline tests of the chart's wiring against the code it deploys: the
environment each container gets is exactly what its settings class reads,
ports and probes are what the apps serve, the relay sidecar is where an outbox
is, and nothing renders empty. Rendered with helm for both values files."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from messaging.accounts import AccountsSettings
from messaging.health import health_routes
from messaging.relay.settings import RelaySettings
from messaging.topology import ProvisionSettings
from notification_service.settings import NotificationServiceSettings
from order_service.settings import OrderServiceSettings
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


def test_ports_and_probes_are_what_the_apps_serve(docs: list[dict[str, Any]]) -> None:
    served = {path for path, _ in health_routes([])}
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
    groups = yaml.safe_load(rules["data"]["alerts.yml"])["groups"]
    assert sum(len(g["rules"]) for g in groups) >= 10


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
