"""Offline tests of the chart's secure-connection values against the settings
classes that read them: every container of ours gets an environment its
settings class accepts (validators included), values-production.yaml
connects to everything over TLS with the CA bundle mounted where the
variables point, and the chart refuses TLS towards its in-cluster servers."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.charts.test_wiring import (
    CHART,
    HELM,
    SETTINGS,
    VALUES,
    by_kind,
    live_feed_rendered,
    pod_specs,
    render,
    render_with,
)

CA = "/etc/reference-system/ca/ca.crt"


def environments(
    docs: list[dict[str, Any]], ca_file: Path
) -> list[tuple[str, str, dict[str, Any], dict[str, str]]]:
    """(pod, container, spec, env) of each container with a settings class;
    secrets become placeholders, the mounted CA bundle a real file here."""
    configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in by_kind(docs, "ConfigMap")}
    out = []
    for pod, spec in pod_specs(docs):
        for container in spec.get("initContainers", []) + spec["containers"]:
            env: dict[str, str] = {}
            for source in container.get("envFrom", []):
                env.update(configmaps[source["configMapRef"]["name"]])
            for item in container.get("env", []):
                env[item["name"]] = item.get("value", "from-a-secret")
            env = {k: str(ca_file) if v == CA else v for k, v in env.items()}
            out.append((pod, container["name"], container, env))
    return out


def settings_class(name: str, spec_containers: list[str]) -> Any:
    return SETTINGS.get(spec_containers[0] if name == "migrate" else name)


@pytest.mark.parametrize("label", list(VALUES))
def test_each_settings_class_accepts_what_the_chart_gives_it(
    label: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text("-----BEGIN CERTIFICATE-----\n")
    docs = render(label)
    mains = {pod: [c["name"] for c in spec["containers"]] for pod, spec in pod_specs(docs)}
    checked = 0
    for pod, name, _, env in environments(docs, ca_file):
        cls = settings_class(name, mains[pod])
        if cls is None:
            continue
        for key in env:
            monkeypatch.setenv(key, env[key])
        try:
            cls()
        finally:
            for key in env:
                monkeypatch.delenv(key)
        checked += 1
    assert checked == 10 + live_feed_rendered(docs)


def test_production_connects_to_everything_over_tls() -> None:
    docs = render("production")
    mounts = {}
    for pod, spec in pod_specs(docs):
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec.get("initContainers", []) + spec["containers"]:
            for mount in container.get("volumeMounts", []):
                if mount["name"] == "ca-bundle":
                    assert volumes["ca-bundle"]["configMap"]["name"] == "internal-ca"
                    mounts[(pod, container["name"])] = mount["mountPath"]
    seen = {"postgresql": 0, "rabbitmq": 0, "kafka": 0, "smtp": 0}
    for pod, name, _, env in environments(docs, Path(CA)):
        if "DATABASE_SSLMODE" in env or "POSTGRES_SSLMODE" in env:
            assert env.get("DATABASE_SSLMODE", env.get("POSTGRES_SSLMODE")) == "verify-full"
            assert CA in (env.get("DATABASE_SSLROOTCERT"), env.get("POSTGRES_SSLROOTCERT"))
            seen["postgresql"] += 1
        if "RABBITMQ_TLS" in env:
            assert (env["RABBITMQ_TLS"], env["RABBITMQ_PORT"]) == ("true", "5671")
            assert env["RABBITMQ_SSL_CAFILE"] == CA
            seen["rabbitmq"] += 1
        if "RABBITMQ_MANAGEMENT_URL" in env:
            assert env["RABBITMQ_MANAGEMENT_URL"].startswith("https://")
            assert env["RABBITMQ_MANAGEMENT_SSL_CAFILE"] == CA
        if "KAFKA_BOOTSTRAP_SERVERS" in env:
            assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
            assert env["KAFKA_SSL_CAFILE"] == CA
            assert env["KAFKA_SASL_PASSWORD"] == "from-a-secret"
            seen["kafka"] += 1
        if "SMTP_HOST" in env:
            assert env["SMTP_SECURITY"] == "starttls"
            assert env["SMTP_PASSWORD"] == "from-a-secret"
            seen["smtp"] += 1
        if CA in env.values():
            assert mounts.get((pod, name)) == str(Path(CA).parent), f"{pod}/{name}"
    # Every app, migration, relay and provisioning step; the Kafka clients
    # (point-service and its migration, two relays, topology); notification.
    assert seen == {"postgresql": 9, "rabbitmq": 9, "kafka": 5, "smtp": 2}


@pytest.mark.parametrize(
    "values",
    [
        ["--set", "kafka.securityProtocol=SSL"],
        ["--set", "rabbitmq.tls=true"],
        ["--set", "postgresql.sslmode=verify-full"],
        ["--set", "mailpit.smtpSecurity=starttls"],
        [
            "--set", "kafka.enabled=false", "--set", "kafka.bootstrapServers=k:9093",
            "--set", "kafka.securityProtocol=SASL_SSL", "--set", "kafka.saslUsername=u",
        ],
    ],
    ids=["kafka", "rabbitmq", "postgresql", "smtp", "sasl-without-existing-secret"],
)  # fmt: skip
def test_tls_towards_an_in_cluster_server_or_a_login_without_its_secret_is_refused(
    values: list[str],
) -> None:
    result = subprocess.run(
        [str(HELM), "template", "reference", str(CHART), *values],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "execution error" in result.stderr, result.stderr


def egress_ports(docs: list[dict[str, Any]]) -> dict[str, set[int]]:
    """NetworkPolicy name -> the ports its egress rules name (a rule naming
    none, Prometheus's towards the release's pods, adds nothing)."""
    return {
        policy["metadata"]["name"]: {
            int(port["port"]) for rule in policy["spec"]["egress"] for port in rule.get("ports", [])
        }
        for policy in by_kind(docs, "NetworkPolicy")
        if "egress" in policy["spec"]
    }


MANAGED_RABBITMQ = [
    "--set", "rabbitmq.enabled=false",
    "--set", "rabbitmq.host=rabbitmq.data",
    "--set", "rabbitmq.managementUrl=https://rabbitmq.data:15671",
]  # fmt: skip
RABBITMQ_CLIENTS = {
    "reference-order-service",
    "reference-point-service",
    "reference-notification-service",
    "reference-provision",
}


@pytest.mark.parametrize(
    ("values", "port"),
    [
        ([], 5672),
        (MANAGED_RABBITMQ, 5672),
        ([*MANAGED_RABBITMQ, "--set", "rabbitmq.tls=true"], 5671),
        ([*MANAGED_RABBITMQ, "--set", "rabbitmq.tls=true", "--set", "rabbitmq.port=5672"], 5672),
        ([*MANAGED_RABBITMQ, "--set", "rabbitmq.port=5673"], 5673),
    ],
    ids=["in-cluster", "managed", "tls", "tls-on-an-explicit-port", "explicit-port"],
)
def test_rabbitmq_clients_connect_and_are_let_out_on_the_effective_amqp_port(
    values: list[str], port: int
) -> None:
    """rabbitmq.port empty: 5672, or 5671 (AMQPS) with TLS; a port set is kept."""
    docs = render_with(values)
    given = [
        env["RABBITMQ_PORT"]
        for _, _, _, env in environments(docs, Path(CA))
        if "RABBITMQ_PORT" in env
    ]
    # Three apps, their migrations, two relays, the topology step.
    assert given == [str(port)] * 9
    policies = egress_ports(docs)
    assert set(policies) >= RABBITMQ_CLIENTS
    other = {5671, 5672} - {port}
    for name in RABBITMQ_CLIENTS:
        assert port in policies[name], name
        assert not other & policies[name], f"{name} lets out {other & policies[name]} too"
