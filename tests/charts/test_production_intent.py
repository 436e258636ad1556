"""Offline tests of what the chart means to do in production, asserted on the
rendered objects rather than left to the golden files: the Kubernetes floor
the pods' fields need, how a service pod stops, what a node drain and an
autoscaler may do, the infrastructure pods' quirks (Kafka's log
directory, RabbitMQ's cookie, PostgreSQL's readiness), and a helm test that
sends no real mail."""

from __future__ import annotations

import time
from pathlib import PurePosixPath
from typing import Any

import httpx
import pytest
import yaml

from tests.charts.test_secure_connections import egress_ports
from tests.charts.test_values import renders
from tests.charts.test_wiring import (
    CHART,
    LIVE_FEED,
    SERVICE_CONTAINERS,
    VALUES,
    by_kind,
    live_feed_rendered,
    render,
    render_with,
)

# values-production.yaml uses managed Kafka, RabbitMQ and PostgreSQL.
IN_CLUSTER_SERVERS = [label for label in VALUES if label != "production"]


def services(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Deployment name -> pod spec, for the three services."""
    return {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]
        for d in by_kind(docs, "Deployment")
        if d["spec"]["template"]["spec"]["containers"][0]["name"] in SERVICE_CONTAINERS
    }


def statefulset_pod(docs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    [found] = [d for d in by_kind(docs, "StatefulSet") if d["metadata"]["name"].endswith(component)]
    spec: dict[str, Any] = found["spec"]["template"]["spec"]
    return spec


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
            "--set", "redis.enabled=false",
            "--set", "redis.host=redis.data",
            "--set", "redis.port=6380",
            "--set", "credentials.existingSecret=mine",
        ]
    )  # fmt: skip
    dns, postgresql, rabbitmq, otlp, kafka = {53}, {6432}, {5673}, {4319}, {9093, 9095}
    redis, http = {6380}, {8080}
    assert {
        name: ports
        for name, ports in egress_ports(docs).items()
        if name.endswith(("-service", "-provision", "-live-feed"))
    } == {
        "reference-order-service": dns | postgresql | rabbitmq | otlp | kafka | redis,
        "reference-point-service": dns | postgresql | rabbitmq | otlp | kafka | redis,
        "reference-notification-service": dns | postgresql | rabbitmq | otlp | {587} | redis,
        "reference-provision": dns | postgresql | rabbitmq | {15671} | kafka,
        # The services' HTTP ports, for the state it loads on a reconnect.
        "reference-live-feed": dns | redis | otlp | http,
    }


# uvicorn's timeout_graceful_shutdown in messaging.serving: in-flight
# requests and messages get this long after SIGTERM.
DRAIN_S = 20


@pytest.mark.parametrize("label", list(VALUES))
def test_a_service_pod_keeps_serving_then_drains_within_its_grace_period(label: str) -> None:
    """The app container sleeps in preStop while its endpoint is removed
    from every node, then gets SIGTERM and drains: the grace period (counted
    from the start of preStop) must cover the sleep and the drain, or the
    kubelet kills the app mid-drain."""
    shutdown = yaml.safe_load((CHART / "values.yaml").read_text())["shutdown"]
    sleep = shutdown["preStopSleepSeconds"]
    assert sleep > 0
    pods = services(render(label))
    assert len(pods) == 3
    for name, spec in pods.items():
        app = spec["containers"][0]
        assert app["lifecycle"]["preStop"] == {"sleep": {"seconds": sleep}}, name
        assert spec["terminationGracePeriodSeconds"] >= sleep + DRAIN_S, name


def test_the_sleep_and_grace_period_follow_the_values_and_are_checked() -> None:
    values = ["--set", "shutdown.preStopSleepSeconds=15"]
    longer = render_with([*values, "--set", "shutdown.terminationGracePeriodSeconds=60"])
    for spec in services(longer).values():
        assert spec["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"] == 15
        assert spec["terminationGracePeriodSeconds"] == 60
    refused = renders([*values, "--set", "shutdown.terminationGracePeriodSeconds=30"])
    assert refused.returncode != 0
    assert "terminationGracePeriodSeconds must be at least" in refused.stderr


@pytest.mark.parametrize("label", list(VALUES))
def test_disruption_budgets_let_a_drain_evict_one_pod_of_each_service(label: str) -> None:
    """maxUnavailable, never minAvailable: minAvailable 1 on a single
    replica forbids every eviction, and a node drain hangs. The services and
    the live feed have one; the single-replica infrastructure has none (a
    budget could not keep it available anyway)."""
    docs = render(label)
    deployments = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in by_kind(docs, "Deployment")
    }
    covered = set()
    for pdb in by_kind(docs, "PodDisruptionBudget"):
        spec = pdb["spec"]
        assert "minAvailable" not in spec, pdb["metadata"]["name"]
        assert spec["maxUnavailable"] == 1, pdb["metadata"]["name"]
        selector = spec["selector"]["matchLabels"].items()
        covered |= {name for name, labels in deployments.items() if selector <= labels.items()}
    live_feed = {f"reference-{LIVE_FEED}"} if live_feed_rendered(docs) else set()
    assert covered == set(services(docs)) | live_feed


@pytest.mark.parametrize("label", list(VALUES))
def test_autoscalers_follow_the_app_containers_cpu_not_the_relays(label: str) -> None:
    """A Resource metric averages the pod's containers, the relay sidecar's
    included, whose work follows the outbox rather than this pod's load."""
    docs = render(label)
    pods = services(docs)
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    assert hpas
    for hpa in hpas:
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment"
        app = pods[target["name"]]["containers"][0]["name"]
        assert app in SERVICE_CONTAINERS
        for metric in hpa["spec"]["metrics"]:
            assert metric["type"] == "ContainerResource", hpa["metadata"]["name"]
            assert metric["containerResource"]["name"] == "cpu"
            assert metric["containerResource"]["container"] == app


@pytest.mark.parametrize("label", IN_CLUSTER_SERVERS)
def test_kafka_keeps_its_logs_in_a_directory_of_the_volume_not_its_root(label: str) -> None:
    """A fresh ext4 volume holds lost+found at its root, which Kafka takes
    for a corrupt log directory and refuses to start."""
    [kafka] = statefulset_pod(render(label), "-kafka")["containers"]
    env = {e["name"]: e.get("value") for e in kafka["env"]}
    [mount] = [m["mountPath"] for m in kafka["volumeMounts"] if m["name"] == "data"]
    for directory in env["KAFKA_LOG_DIRS"].split(","):
        path = PurePosixPath(directory)
        assert path != PurePosixPath(mount)
        assert PurePosixPath(mount) in path.parents, f"{path} outside the volume {mount}"


@pytest.mark.parametrize("label", IN_CLUSTER_SERVERS)
@pytest.mark.parametrize(
    ("component", "data"),
    [("-rabbitmq", "/var/lib/rabbitmq"), ("-postgresql", "/var/lib/postgresql/data")],
)
def test_volume_ownership_is_set_once_not_on_every_mount(
    label: str, component: str, data: str
) -> None:
    """With fsGroup, the kubelet makes every file of the volume group-readable
    on each mount unless fsGroupChangePolicy is OnRootMismatch (then only
    while the volume's root is not yet the group's, i.e. once, empty).
    RabbitMQ refuses an .erlang.cookie (in its data directory) the group may
    read; PostgreSQL a data directory with group access."""
    spec = statefulset_pod(render(label), component)
    assert spec["securityContext"]["fsGroup"]
    assert spec["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"
    [container] = spec["containers"]
    assert {"name": "data", "mountPath": data} in container["volumeMounts"]


@pytest.mark.parametrize("label", IN_CLUSTER_SERVERS)
def test_postgresql_is_ready_when_it_answers_over_tcp_not_the_unix_socket(label: str) -> None:
    """The image's entrypoint first runs a temporary server on the unix
    socket alone (initdb, init scripts): a readiness check over the socket
    would let clients in before the real server starts."""
    [postgresql] = statefulset_pod(render(label), "-postgresql")["containers"]
    command = postgresql["readinessProbe"]["exec"]["command"]
    assert command[0] == "pg_isready"
    assert "-h" in command, "without -h, pg_isready asks the unix socket"
    assert command[command.index("-h") + 1] == "127.0.0.1"


class FakeSystem:
    """order-service's API and Mailpit's as the helm test sees them: an order
    grants 12 points and mails its customer; every request is recorded."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str]] = []
        self.orders = self.balance = 0
        self.mails: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        method, path = request.method, request.url.path
        self.requests.append((method, request.url.host, path))
        if (method, path) == ("POST", "/orders"):
            self.orders, self.balance = self.orders + 1, 12
            self.mails = ["order confirmation", "points granted"]
            return httpx.Response(201, json={"id": "order-1"})
        if (method, path) == ("POST", "/orders/order-1/cancel"):
            self.balance = 0
            return httpx.Response(200, json={"id": "order-1"})
        if method == "GET" and path.endswith("/summary"):
            points = {"status": "available", "balance": self.balance}
            return httpx.Response(200, json={"orders": self.orders, "points": points})
        if (method, path) == ("GET", "/api/v1/search"):
            return httpx.Response(200, json={"messages": [{"ID": m} for m in self.mails]})
        if (method, path) == ("DELETE", "/api/v1/messages"):
            self.mails = []
            return httpx.Response(200)
        return httpx.Response(404)


def run_helm_test(values: list[str], monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """Runs the rendered helm test's script here, its HTTP calls answered by
    FakeSystem and its clock advanced by its sleeps; the requests it made."""
    docs = render_with(values)
    [pod] = [
        p for p in by_kind(docs, "Pod") if p["metadata"]["annotations"]["helm.sh/hook"] == "test"
    ]
    [container] = pod["spec"]["containers"]
    assert container["command"][:2] == ["python", "-c"]
    monkeypatch.delenv("MAILPIT_API", raising=False)
    for env in container["env"]:
        monkeypatch.setenv(env["name"], env["value"])
    system = FakeSystem()
    client = httpx.Client

    def fake_client(**kwargs: Any) -> httpx.Client:
        return client(transport=httpx.MockTransport(system.handle), **kwargs)

    now = [0.0]
    monkeypatch.setattr(httpx, "Client", fake_client)
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    monkeypatch.setattr(time, "sleep", lambda seconds: now.__setitem__(0, now[0] + seconds))
    try:
        script = compile(container["command"][2], "helm-test", "exec")
        exec(script, {"__name__": "__main__"})  # noqa: S102 - the chart's own script
    except SystemExit as exc:
        pytest.fail(f"the helm test failed: {exc}")
    return system.requests


def test_with_the_mail_catcher_the_helm_test_places_an_order_and_deletes_its_mails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    requests = run_helm_test([], monkeypatch)
    writes = [(method, host, path) for method, host, path in requests if method != "GET"]
    assert writes == [
        ("POST", "reference-order-service", "/orders"),
        ("POST", "reference-order-service", "/orders/order-1/cancel"),
        ("DELETE", "reference-mailpit", "/api/v1/messages"),
    ]


@pytest.mark.parametrize(
    "values",
    [
        VALUES["production"],
        ["--set", "mailpit.enabled=false", "--set", "mailpit.smtpHost=smtp.example.com"],
    ],
    ids=["production", "external-smtp"],
)
def test_without_the_mail_catcher_the_helm_test_places_no_order(
    values: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mail goes to a real SMTP server: an order would mail its customer for
    real. The helm test only reads (a summary with point-service's balance)."""
    requests = run_helm_test(values, monkeypatch)
    assert requests
    assert {method for method, _, _ in requests} == {"GET"}
    assert {host for _, host, _ in requests} == {"reference-order-service"}
    assert all(path.endswith("/summary") for _, _, path in requests)
    [policy] = [
        p for p in by_kind(render_with(values), "NetworkPolicy")
        if p["metadata"]["name"] == "reference-test-order-flow"
    ]  # fmt: skip
    assert egress_ports([policy]) == {"reference-test-order-flow": {53, 8080}}
