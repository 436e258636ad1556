"""Offline tests of the chart's wiring against the code it deploys: the
environment each container gets is exactly what its settings class reads,
ports and probes are what the apps serve, the relay sidecar is where an outbox
is, and nothing renders empty. Rendered with helm for every values file."""

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

from catalogue import services
from catalogue.accounts import AccountsSettings
from catalogue.topology import ORDERS, TOPICS, ProvisionSettings
from live_feed.entrypoints.app import create_app as live_feed_app
from live_feed.settings import LiveFeedSettings
from messaging.asyncapi import placeholder_settings
from messaging.settings import HttpSettings, RedisSettings
from notification_service.entrypoints.app import create_app as notification_app
from notification_service.settings import NotificationServiceSettings
from order_service.entrypoints.http import create_app as order_app
from order_service.settings import OrderServiceSettings
from outbox_relay.cli import health_app
from outbox_relay.relay import OutboxRelay
from outbox_relay.settings import RelaySettings
from point_service.entrypoints.app import create_app as point_app
from point_service.settings import PointServiceSettings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "reference-system"
HELM = ROOT / ".tools" / "bin" / "helm"
VALUES = {
    "default": [],
    "production": ["-f", str(ROOT / "deploy/helm/values-production.yaml")],
    # What the kind path installs on a machine without a registry (make kind-up).
    "local-images": [
        "-f", str(ROOT / "deploy/helm/values-local-images.yaml"),
        "--set", "image.pullPolicy=Never",
    ],
}  # fmt: skip

SETTINGS: dict[str, type[BaseSettings]] = {
    "order-service": OrderServiceSettings,
    "point-service": PointServiceSettings,
    "notification-service": NotificationServiceSettings,
    "outbox-relay": RelaySettings,
    "live-feed": LiveFeedSettings,
    "accounts": AccountsSettings,
    "topology": ProvisionSettings,
}
PROCESSES = set(services.PROCESSES)
SERVICE_CONTAINERS = set(services.PROGRAMS)
# The live feed's program: its container, OTel service name and Prometheus job.
LIVE_FEED = "live-feed"


def render(label: str) -> list[dict[str, Any]]:
    return render_with(VALUES[label])


def render_with(values: list[str]) -> list[dict[str, Any]]:
    return rendered(tuple(values))


@functools.cache
def rendered(values: tuple[str, ...]) -> list[dict[str, Any]]:
    if not HELM.exists():
        pytest.fail(f"{HELM} missing: run `make tools`")
    out = subprocess.run(
        [
            str(HELM),
            "template",
            "reference",
            str(CHART),
            *values,
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


def live_feed_rendered(docs: list[dict[str, Any]]) -> bool:
    return any(
        d["metadata"]["name"] == f"reference-{LIVE_FEED}" for d in by_kind(docs, "Deployment")
    )


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
    # Three apps and their migrations, two relays, two provisioning steps;
    # the live feed where there is a Redis.
    assert checked == 10 + live_feed_rendered(docs)


def env_values(container: dict[str, Any], configmaps: dict[str, dict[str, str]]) -> dict[str, Any]:
    """A container's variables: ConfigMap values, or the env entry's valueFrom."""
    found: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        found.update(configmaps[source["configMapRef"]["name"]])
    for env in container.get("env", []):
        found[env["name"]] = env.get("value", env.get("valueFrom"))
    return found


REDIS_VARIABLES = {"REDIS_HOST", "REDIS_PORT", "REDIS_TIMEOUT_MS"}


def test_every_reader_of_redis_settings_gets_the_same_redis(docs: list[dict[str, Any]]) -> None:
    """RedisSettings' variables have defaults, so a missing one would not fail
    the test above: with a Redis, every container whose settings class reads
    them gets REDIS_HOST, REDIS_PORT and REDIS_TIMEOUT_MS, all naming the same
    Redis, and each process that publishes or subscribes (not a migration)
    REDIS_PASSWORD from the Secret. Without one (production) none: an empty
    REDIS_HOST, the default, turns the notices off."""
    configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in by_kind(docs, "ConfigMap")}
    endpoints = set()
    readers = set()
    for pod, spec in pod_specs(docs):
        app = spec["containers"][0]["name"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            cls = SETTINGS.get(app if container["name"] == "migrate" else container["name"])
            if cls is None:  # not ours (Redis itself reads its password)
                continue
            env = env_values(container, configmaps)
            if not issubclass(cls, RedisSettings):
                assert not {*REDIS_VARIABLES, "REDIS_PASSWORD"} & set(env), pod
                continue
            readers.add(container["name"])
            endpoints.add(tuple(env.get(name) for name in sorted(REDIS_VARIABLES)))
            if container["name"] != "migrate" and "REDIS_HOST" in env:
                assert env["REDIS_PASSWORD"]["secretKeyRef"]["key"] == "redis-password", pod
            else:
                assert "REDIS_PASSWORD" not in env, pod
    [endpoint] = endpoints
    if live_feed_rendered(docs):
        assert endpoint == ("reference-redis", "6379", "200")
        assert readers == SERVICE_CONTAINERS | {"migrate", LIVE_FEED}
    else:
        assert endpoint == (None, None, None)
        assert RedisSettings().redis_host == "", "the feed is off"


def test_the_live_feed_gets_every_variable_of_its_settings_but_the_images_defaults() -> None:
    """Exactly LiveFeedSettings: the services' base URLs point at their HTTP
    Services; what the image or the defaults supply (HTTP_HOST,
    HTTP_MAX_BODY_BYTES) is left to them, as for the services."""
    docs = render_with(
        [
            "--set", "liveFeed.traceUiUrl=http://localhost:16686",
            "--set", "liveFeed.mailUiUrl=http://localhost:8025",
        ]
    )  # fmt: skip
    configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in by_kind(docs, "ConfigMap")}
    [spec] = [s for p, s in pod_specs(docs) if p == f"reference-{LIVE_FEED}"]
    [container] = spec["containers"]
    env = env_values(container, configmaps)
    _, every = variables(LiveFeedSettings)
    _, http = variables(HttpSettings)
    assert set(env) == every - (http - {"HTTP_PORT"})
    assert (env["OTEL_SERVICE_NAME"], env["TRACE_UI_URL"]) == (LIVE_FEED, "http://localhost:16686")
    services = {s["metadata"]["name"]: s["spec"] for s in by_kind(docs, "Service")}
    for name in SERVICE_CONTAINERS:
        url = env[f"{name.split('-')[0].upper()}_SERVICE_URL"]
        host, port = url.removeprefix("http://").split(":")
        assert services[host]["selector"]["app.kubernetes.io/name"] == name, url
        assert int(port) in [p["port"] for p in services[host]["ports"]], url


@functools.cache
def served_paths() -> dict[str, set[str]]:
    """The HTTP paths each container's app serves, read from the apps themselves
    (built with placeholder settings; nothing connects)."""
    values = placeholder_settings()
    order = order_app(OrderServiceSettings.model_validate(values), TracerProvider())
    point = point_app(PointServiceSettings.model_validate(values), TracerProvider())
    notification = notification_app(
        NotificationServiceSettings.model_validate(values), TracerProvider()
    )
    relay = health_app(OutboxRelay(RelaySettings.model_validate(values)))
    urls = {f"{s.split('-')[0]}_service_url": f"http://{s}:8080" for s in SERVICE_CONTAINERS}
    feed = live_feed_app(LiveFeedSettings.model_validate({**values, **urls}), TracerProvider())
    return {
        "order-service": {str(getattr(route, "path", "")) for route in order.routes},
        "point-service": {path for path, _ in point.routes},
        "notification-service": {path for path, _ in notification.routes},
        "outbox-relay": {str(getattr(route, "path", "")) for route in relay.routes},
        LIVE_FEED: {str(getattr(route, "path", "")) for route in feed.routes},
    }


def test_ports_and_probes_are_what_the_apps_serve(docs: list[dict[str, Any]]) -> None:
    configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in by_kind(docs, "ConfigMap")}
    for deployment in by_kind(docs, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            if container["name"] not in SERVICE_CONTAINERS | {"outbox-relay", LIVE_FEED}:
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


def referenced_objects(spec: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(kind, name, key) of every ConfigMap, Secret and ServiceAccount a pod
    uses; key is "" where the whole object is used."""
    refs = set()
    if "serviceAccountName" in spec:
        refs.add(("ServiceAccount", spec["serviceAccountName"], ""))
    for volume in spec.get("volumes", []):
        sources = [volume, *volume.get("projected", {}).get("sources", [])]
        for source in sources:
            if "configMap" in source:
                refs.add(("ConfigMap", source["configMap"]["name"], ""))
            if "secret" in source:
                refs.add(
                    ("Secret", source["secret"].get("secretName", source["secret"].get("name")), "")
                )
    for container in spec.get("initContainers", []) + spec["containers"]:
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                refs.add(("ConfigMap", source["configMapRef"]["name"], ""))
            if "secretRef" in source:
                refs.add(("Secret", source["secretRef"]["name"], ""))
        for env in container.get("env", []):
            for kind, ref in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                if ref in env.get("valueFrom", {}):
                    selector = env["valueFrom"][ref]
                    refs.add((kind, selector["name"], selector["key"]))
    return refs


@pytest.mark.parametrize(
    "variant",
    [
        [],
        ["-f", str(ROOT / "deploy/helm/values-production.yaml")],
        ["--set", "monitoring.dashboards.enabled=false"],
    ],
    ids=["default", "production", "no-dashboards"],
)
def test_every_object_a_pod_uses_is_rendered(variant: list[str]) -> None:
    """A pod that mounts a ConfigMap the release does not render never starts."""
    rendered = render_with(variant)
    objects = {(d["kind"], d["metadata"]["name"]): d for d in rendered}
    # What the user supplies is not rendered: credentials.existingSecret and
    # the CA bundle of tls.caBundle.
    external = set()
    if variant[:1] == ["-f"]:
        values = yaml.safe_load(Path(variant[1]).read_text())
        external.add(("Secret", values["credentials"]["existingSecret"]))
        external.add(("ConfigMap", values["tls"]["caBundle"]["configMap"]))
    for pod, spec in pod_specs(rendered):
        for kind, name, key in referenced_objects(spec):
            if (kind, name) in external:
                continue
            assert (kind, name) in objects, f"{pod} uses {kind}/{name}, which is not rendered"
            if key:
                data = objects[(kind, name)].get("data", {})
                assert key in data, f"{pod} uses key {key} of {kind}/{name}, which has none"


QUANTITY = re.compile(r"^([0-9]+)(Ki|Mi|Gi)?$")


def quantity(text: str) -> int:
    match = QUANTITY.match(text)
    assert match, f"unexpected quantity {text}"
    scale = {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}[match.group(2)]
    return int(match.group(1)) * scale


def test_empty_dirs_fit_in_the_pods_ephemeral_storage(docs: list[dict[str, Any]]) -> None:
    """An emptyDir on disk counts against the pod's ephemeral-storage limit (the
    sum of its long-running containers' limits): past it, the pod is evicted."""
    for pod, spec in pod_specs(docs):
        running = spec["containers"] + [
            c for c in spec.get("initContainers", []) if c.get("restartPolicy") == "Always"
        ]
        limit = sum(quantity(c["resources"]["limits"]["ephemeral-storage"]) for c in running)
        declared = sum(
            quantity(v["emptyDir"]["sizeLimit"])
            for v in spec.get("volumes", [])
            if "sizeLimit" in v.get("emptyDir", {}) and v["emptyDir"].get("medium") != "Memory"
        )
        assert declared < limit, f"{pod}: emptyDirs of {declared} B in a {limit} B limit"


def test_prometheus_scrapes_every_replica_of_each_service_relay_and_the_live_feed() -> None:
    rendered = render_with([])
    [config_map] = [
        d for d in by_kind(rendered, "ConfigMap") if "prometheus.yml" in d.get("data", {})
    ]
    jobs = {
        j["job_name"]: j
        for j in yaml.safe_load(config_map["data"]["prometheus.yml"])["scrape_configs"]
    }
    services = {s["metadata"]["name"]: s["spec"] for s in by_kind(rendered, "Service")}
    configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in by_kind(rendered, "ConfigMap")}
    scraped = set()
    for deployment in by_kind(rendered, "Deployment"):
        template = deployment["spec"]["template"]
        for container in (
            template["spec"].get("initContainers", []) + template["spec"]["containers"]
        ):
            if container["name"] not in SERVICE_CONTAINERS | {"outbox-relay", LIVE_FEED}:
                continue
            assert "/metrics" in served_paths()[container["name"]]
            # The job is named after the process, as in the local stack and the dashboards.
            [source] = [s["configMapRef"]["name"] for s in container["envFrom"]]
            job = configmaps[source]["OTEL_SERVICE_NAME"]
            [sd] = jobs[job]["dns_sd_configs"]
            # One address per pod: a headless Service selecting this Deployment's pods.
            service = services[sd["names"][0].split(".")[0]]
            assert service["clusterIP"] == "None", f"{job} scrapes through a load-balanced Service"
            assert service["selector"].items() <= template["metadata"]["labels"].items()
            assert sd["port"] in [p["containerPort"] for p in container["ports"]]
            scraped.add(job)
    assert scraped == PROCESSES | {LIVE_FEED}


@pytest.mark.parametrize(
    ("values", "jobs"),
    [
        (VALUES["production"], PROCESSES),
        (["--set", "monitoring.podMonitor.enabled=true"], PROCESSES | {LIVE_FEED}),
    ],
    ids=["production", "with-the-live-feed"],
)
def test_the_pod_monitor_names_jobs_as_the_dashboards_do(values: list[str], jobs: set[str]) -> None:
    """values-production.yaml scrapes through the prometheus-operator: the
    PodMonitor's relabelling must give each port the job name of its process
    (the live feed's too, where it runs; production has no Redis)."""
    rendered = render_with(values)
    [monitor] = by_kind(rendered, "PodMonitor")
    configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in by_kind(rendered, "ConfigMap")}
    selector = monitor["spec"]["selector"]
    [expression] = selector["matchExpressions"]
    scraped = set()
    for deployment in by_kind(rendered, "Deployment"):
        template = deployment["spec"]["template"]
        labels = template["metadata"]["labels"]
        name = labels["app.kubernetes.io/name"]
        if not (selector["matchLabels"].items() <= labels.items() and name in expression["values"]):
            continue
        containers = template["spec"].get("initContainers", []) + template["spec"]["containers"]
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            [relabel] = endpoint["relabelings"]
            assert relabel["targetLabel"] == "job"
            assert relabel["sourceLabels"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_name"]
            owners = [
                c for c in containers if endpoint["port"] in {p["name"] for p in c.get("ports", [])}
            ]
            if not owners:  # no such port in this pod: no target
                continue
            [owner] = owners
            match = re.fullmatch(relabel.get("regex", "(.*)"), name)
            assert match, f"{name}:{endpoint['port']} is scraped without a job name"
            assert endpoint["path"] in served_paths()[owner["name"]]
            # Prometheus writes a group as $1 or ${1}; Python as \g<1>.
            replacement = re.sub(r"\$\{?(\w+)\}?", r"\\g<\1>", relabel.get("replacement", "$1"))
            job = match.expand(replacement)
            [source] = [s["configMapRef"]["name"] for s in owner["envFrom"]]
            assert job == configmaps[source]["OTEL_SERVICE_NAME"]
            scraped.add(job)
    assert scraped == jobs
