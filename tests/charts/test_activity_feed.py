"""Offline tests of the activity notices' part of the chart: Redis (pub/sub
only, a password from the Secret, reachable by the services and the live feed
alone), switched off or replaced by an external one, and the live feed beside
it. The rendered Redis command is run against Debian's redis-server (what the
local stack and the kind image run), so its configuration is proven, not read."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from live_feed.settings import LiveFeedSettings
from order_service.settings import OrderServiceSettings
from tests.charts.test_secure_connections import egress_ports
from tests.charts.test_values import renders
from tests.charts.test_wiring import (
    LIVE_FEED,
    SERVICE_CONTAINERS,
    by_kind,
    env_values,
    pod_specs,
    render,
    render_with,
)

NO_REDIS = ["--set", "redis.enabled=false"]
EXTERNAL = [
    "--set", "redis.enabled=false",
    "--set", "redis.host=redis.data",
    "--set", "redis.port=6380",
    "--set", "credentials.existingSecret=mine",
]  # fmt: skip
REDIS_SERVER = "/usr/bin/redis-server"


def names(docs: list[dict[str, Any]]) -> set[str]:
    return {d["metadata"]["name"] for d in docs}


def pod_labels(docs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Workload name -> its pods' labels."""
    return {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet", "Job")
    } | {d["metadata"]["name"]: d["metadata"]["labels"] for d in by_kind(docs, "Pod")}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A NetworkPolicy podSelector (matchLabels, matchExpressions with In) on labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def app_envs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """App container name -> its variables, for the services and the live feed."""
    configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in by_kind(docs, "ConfigMap")}
    return {
        c["name"]: env_values(c, configmaps)
        for _, spec in pod_specs(docs)
        for c in spec["containers"]
        if c["name"] in SERVICE_CONTAINERS | {LIVE_FEED}
    }


def test_without_redis_the_services_publish_nothing_and_there_is_no_live_feed() -> None:
    docs = render_with(NO_REDIS)
    assert not {"reference-redis", f"reference-{LIVE_FEED}"} & names(docs)
    envs = app_envs(docs)
    assert set(envs) == SERVICE_CONTAINERS
    for name, env in envs.items():
        assert not {k for k in env if k.startswith("REDIS_")}, name
    for name, labels in pod_labels(docs).items():
        assert labels.get("reference-system/client-of-redis") != "true", name
    for name, ports in egress_ports(docs).items():
        assert 6379 not in ports, name
    # What the services then read: an empty host, the feed off.
    configmaps = {c["metadata"]["name"]: c["data"] for c in by_kind(docs, "ConfigMap")}
    env = configmaps["reference-order-service-env"]
    settings = OrderServiceSettings.model_validate(
        {k.lower(): v for k, v in env.items()}
        | {"database_password": "x", "rabbitmq_password": "x"}
    )
    assert settings.redis_host == ""
    [prometheus] = [c for c in by_kind(docs, "ConfigMap") if "prometheus.yml" in c["data"]]
    assert f"job_name: {LIVE_FEED}" not in prometheus["data"]["prometheus.yml"]


def test_an_external_redis_is_used_by_every_publisher_and_the_live_feed() -> None:
    docs = render_with(EXTERNAL)
    assert "reference-redis" not in names(docs)
    envs = app_envs(docs)
    assert set(envs) == SERVICE_CONTAINERS | {LIVE_FEED}
    for name, env in envs.items():
        assert (env["REDIS_HOST"], env["REDIS_PORT"]) == ("redis.data", "6380"), name
        ref = env["REDIS_PASSWORD"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == ("mine", "redis-password"), name
    for name in (*(f"reference-{s}" for s in SERVICE_CONTAINERS), f"reference-{LIVE_FEED}"):
        assert 6380 in egress_ports(docs)[name], name


def test_an_external_redis_needs_the_existing_secret_for_its_password() -> None:
    refused = renders(EXTERNAL[:-2])
    assert refused.returncode != 0
    assert "redis-password of credentials.existingSecret" in refused.stderr


def test_the_live_feed_can_be_switched_off_alone() -> None:
    docs = render_with(["--set", "liveFeed.enabled=false"])
    assert f"reference-{LIVE_FEED}" not in names(docs)
    assert "reference-redis" in names(docs)
    for name, env in app_envs(docs).items():
        assert env["REDIS_HOST"] == "reference-redis", name


@pytest.mark.parametrize("label", ["default", "local-images"])
def test_only_the_services_and_the_live_feed_reach_redis(label: str) -> None:
    """Redis admits port 6379 from pods labelled client-of-redis, and exactly
    the three services and the live feed carry that label: not the relays'
    provisioning Job, the helm test, the observability backends."""
    docs = render(label)
    [policy] = [
        p for p in by_kind(docs, "NetworkPolicy") if p["metadata"]["name"] == "reference-redis"
    ]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    [rule] = policy["spec"]["ingress"]
    assert [p["port"] for p in rule["ports"]] == [6379]
    [peer] = rule["from"]
    admitted = {
        name for name, labels in pod_labels(docs).items() if selects(peer["podSelector"], labels)
    }
    expected = {f"reference-{s}" for s in SERVICE_CONTAINERS} | {f"reference-{LIVE_FEED}"}
    assert admitted == expected
    assert egress_ports([policy]) == {"reference-redis": {53}}, "Redis calls nobody"


def test_the_live_feed_is_reached_on_its_page_and_reaches_only_what_it_reads() -> None:
    """Ingress: its HTTP port from any source, like order-service's API (a
    browser comes through whatever the platform routes). Egress: DNS, Redis,
    the OTLP endpoint, and port 8080 of exactly the three services' pods."""
    docs = render("default")
    [policy] = [
        p
        for p in by_kind(docs, "NetworkPolicy")
        if p["metadata"]["name"] == f"reference-{LIVE_FEED}"
    ]
    assert policy["spec"]["ingress"] == [{"ports": [{"port": 8080, "protocol": "TCP"}]}]
    to_pods = [rule for rule in policy["spec"]["egress"] if "to" in rule]
    [rule] = to_pods
    [peer] = rule["to"]
    reached = {
        name for name, labels in pod_labels(docs).items() if selects(peer["podSelector"], labels)
    }
    assert reached == {f"reference-{s}" for s in SERVICE_CONTAINERS}
    assert [p["port"] for p in rule["ports"]] == [8080]
    assert egress_ports([policy])[policy["metadata"]["name"]] == {53, 6379, 4317, 8080}


def redis_pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [spec] = [s for name, s in pod_specs(docs) if name == "reference-redis"]
    return spec


@pytest.mark.parametrize("label", ["default", "local-images"])
def test_redis_keeps_nothing_and_takes_its_password_from_the_secret(label: str) -> None:
    docs = render(label)
    [deployment] = [
        d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "reference-redis"
    ]
    assert deployment["spec"]["replicas"] == 1
    assert not by_kind(docs, "PersistentVolumeClaim")
    assert "reference-redis" not in {s["metadata"]["name"] for s in by_kind(docs, "StatefulSet")}
    spec = redis_pod(docs)
    volumes = spec["volumes"]
    assert all("emptyDir" in v for v in volumes), "no volume outlives the pod"
    [container] = spec["containers"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"]}
    assert env == {"REDIS_PASSWORD": "redis-password", "REDISCLI_AUTH": "redis-password"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["readinessProbe"]["exec"]["command"][-1].endswith("grep -qx PONG")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def rendered_redis(tmp_path: Path) -> Iterator[tuple[int, str, subprocess.Popen[bytes]]]:
    """Debian's redis-server started with the chart's own command, on a free
    loopback port and a temporary working directory; a password with the
    characters Redis's configuration syntax escapes."""
    if not Path(REDIS_SERVER).exists():
        pytest.fail(f"{REDIS_SERVER} missing: make system-deps installs redis-server")
    [container] = redis_pod(render("default"))["containers"]
    command, port = container["command"], free_port()
    assert command[:2] == ["sh", "-c"]
    script = command[2].replace("port 6379", f"port {port}").replace("dir /tmp", f"dir {tmp_path}")
    assert f"port {port}" in script
    assert f"dir {tmp_path}" in script
    password = 'a "quoted" pass\\word'
    env = {"PATH": os.environ["PATH"], "REDIS_PASSWORD": password}
    server = subprocess.Popen(
        ["sh", "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    out = server.stdout.read().decode() if server.stdout else ""
                    pytest.fail(f"redis-server did not start: {out}")
                time.sleep(0.05)
        yield port, password, server
    finally:
        server.terminate()
        server.wait(timeout=10)


def redis_cli(port: int, *args: str, password: str | None = None) -> str:
    env = {"PATH": os.environ["PATH"]}
    if password is not None:
        env["REDISCLI_AUTH"] = password
    done = subprocess.run(
        ["redis-cli", "-p", str(port), *args], env=env, capture_output=True, text=True, timeout=10
    )
    return done.stdout.strip()


def test_the_rendered_redis_asks_for_the_password_and_persists_nothing(
    rendered_redis: tuple[int, str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    if not shutil.which("redis-cli"):
        pytest.fail("redis-cli missing: make system-deps installs redis-server (redis-tools)")
    port, password, server = rendered_redis
    assert redis_cli(port, "ping").startswith("NOAUTH")
    assert redis_cli(port, "ping", password="wrong") != "PONG"
    assert redis_cli(port, "ping", password=password) == "PONG"
    # `save` and its value, empty (no RDB snapshots): nothing after the name.
    assert redis_cli(port, "config", "get", "save", password=password) == "save"
    assert redis_cli(port, "config", "get", "appendonly", password=password).splitlines() == [
        "appendonly",
        "no",
    ]
    limit = redis_cli(port, "config", "get", "client-output-buffer-limit", password=password)
    assert "pubsub 8388608 2097152 60" in limit
    # PID 1 in the pod is redis-server itself (exec), and the password is not
    # among its arguments.
    arguments = Path(f"/proc/{server.pid}/cmdline").read_bytes().decode()
    assert arguments.startswith("redis-server")
    assert password not in arguments
    # Pub/sub through it, as a service publishes and the live feed subscribes.
    assert redis_cli(port, "publish", "activity.order-service", "{}", password=password) == "0"
    assert not list(tmp_path.iterdir()), "nothing written to its working directory"


def test_the_live_feed_settings_accept_what_the_chart_gives_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the page's links set, the URLs are valid for LiveFeedSettings'
    validators (http(s), no trailing slash needed)."""
    docs = render_with(
        [
            "--set", "liveFeed.traceUiUrl=http://localhost:16686/",
            "--set", "liveFeed.mailUiUrl=http://localhost:8025",
        ]
    )  # fmt: skip
    env = app_envs(docs)[LIVE_FEED]
    for key, value in env.items():
        monkeypatch.setenv(key, value if isinstance(value, str) else "from-a-secret")
    settings = LiveFeedSettings()
    assert settings.redis_host == "reference-redis"
    assert settings.trace_ui_url == "http://localhost:16686"
    assert settings.order_service_url == "http://reference-order-service:8080"
