"""Offline tests of what an upgrade restarts: a configuration change rolls
exactly the pods that read it, a chart version bump restarts nothing, a
changed password rolls the pods that use it, and the provisioning Job is a new
Job exactly when what it runs changes. (On kind, tests/e2e runs a real
upgrade under traffic.)"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.charts.test_wiring import CHART, HELM, render, render_with

WORKLOADS = ("Deployment", "StatefulSet")
SERVICES = {"reference-order-service", "reference-point-service", "reference-notification-service"}
LIVE_FEED = "reference-live-feed"
# Rendered twice, generated passwords differ: what is derived from them is
# compared by test_a_changed_password_rolls_the_pods_that_use_it instead.
RANDOM = "checksum/secret"


def pod_templates(docs: list[dict[str, Any]]) -> dict[str, str]:
    templates = {}
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            template = json.loads(json.dumps(doc["spec"]["template"]))
            template["metadata"].get("annotations", {}).pop(RANDOM, None)
            templates[doc["metadata"]["name"]] = json.dumps(template, sort_keys=True)
    return templates


def rolled(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> set[str]:
    old, new = pod_templates(before), pod_templates(after)
    assert old.keys() == new.keys()
    return {name for name in old if old[name] != new[name]}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (["--set", "logLevel=DEBUG"], SERVICES | {LIVE_FEED}),
        (
            ["--set", "services.order-service.env.POINTS_REQUEST_TIMEOUT_S=0.5"],
            {"reference-order-service"},
        ),
        (
            ["--set-string", "relay.env.RELAY_BATCH_SIZE=500"],
            {"reference-order-service", "reference-point-service"},
        ),
        (["--set", "otel.endpoint=http://collector:4317"], SERVICES | {LIVE_FEED}),
        (["--set", "redis.timeoutMs=500"], SERVICES | {LIVE_FEED}),
        (["--set", "redis.pubsubBufferLimit.hard=16mb"], {"reference-redis"}),
        (["--set", "liveFeed.traceUiUrl=http://localhost:16686"], {LIVE_FEED}),
        (["--set", "prometheus.retention=3d"], {"reference-prometheus"}),
        (["--set", "services.point-service.enabled=false"], {"reference-prometheus"}),
        (["--set", "image.tag=v2"], SERVICES | {LIVE_FEED}),
    ],
    ids=lambda v: v[1] if isinstance(v, list) else "",
)
def test_a_configuration_change_rolls_exactly_the_pods_that_read_it(
    change: list[str], expected: set[str]
) -> None:
    before = render("default")
    after = render_with(change)
    if "enabled=false" in change[1]:
        before = [d for d in before if d["metadata"]["name"] != "reference-point-service"]
    assert rolled(before, after) == expected


def test_a_chart_version_bump_restarts_nothing(tmp_path: Path) -> None:
    chart = tmp_path / "reference-system"
    shutil.copytree(CHART, chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["version"] = "99.0.0"
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta))
    bumped = subprocess.run(
        [str(HELM), "template", "reference", str(chart), "--kube-version", "1.31.0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    after = [d for d in yaml.safe_load_all(bumped) if d]
    assert any(d["metadata"]["labels"]["helm.sh/chart"].endswith("99.0.0") for d in after)
    assert rolled(render("default"), after) == set()


def secret_digest(docs: list[dict[str, Any]], keys: list[str]) -> str:
    [secret] = [d for d in docs if d["kind"] == "Secret"]
    return hashlib.sha256(",".join(secret["data"][k] for k in keys).encode()).hexdigest()


def test_a_changed_password_rolls_the_pods_that_use_it() -> None:
    """Each pod's checksum/secret is the digest of exactly the passwords it
    reads from the chart's Secret, in the same rendering."""
    docs = render("default")
    reads: dict[str, list[str]] = {}
    for doc in docs:
        if doc["kind"] not in WORKLOADS:
            continue
        keys = {
            e["valueFrom"]["secretKeyRef"]["key"]
            for c in doc["spec"]["template"]["spec"].get("initContainers", [])
            + doc["spec"]["template"]["spec"]["containers"]
            for e in c.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        if keys:
            reads[doc["metadata"]["name"]] = sorted(keys)
            annotations = doc["spec"]["template"]["metadata"]["annotations"]
            expected = secret_digest(docs, list(annotation_order(doc, keys)))
            assert annotations[RANDOM] == expected, doc["metadata"]["name"]
    assert set(reads) == SERVICES | {
        "reference-postgresql",
        "reference-rabbitmq",
        "reference-grafana",
        "reference-redis",
        LIVE_FEED,
    }


def annotation_order(doc: dict[str, Any], keys: set[str]) -> list[str]:
    """The chart hashes a service's database password, then its RabbitMQ one,
    then Redis's."""
    order = ("database", "rabbitmq", "redis")
    return sorted(keys, key=lambda k: next((i for i, w in enumerate(order) if w in k), 0))


def test_with_an_existing_secret_no_pod_claims_to_follow_it() -> None:
    docs = render_with(["--set", "credentials.existingSecret=mine"])
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            assert RANDOM not in doc["spec"]["template"]["metadata"].get("annotations", {})


def provisioning_job(values: list[str]) -> str:
    base = ["--set", "credentials.existingSecret=mine"]
    [job] = [d for d in render_with(base + values) if d["kind"] == "Job"]
    assert "helm.sh/hook" not in job["metadata"].get("annotations", {}), "a regular Job"
    return str(job["metadata"]["name"])


def test_the_provisioning_job_is_new_exactly_when_what_it_runs_changes() -> None:
    job = provisioning_job([])
    assert job.startswith("reference-provision-")
    assert provisioning_job([]) == job, "the same values give the same Job (no GitOps drift)"
    assert provisioning_job(["--set", "logLevel=DEBUG"]) == job
    assert provisioning_job(["--set", "image.tag=v2"]) != job
    assert provisioning_job(["--set", "provisioning.kafkaReplicationFactor=3"]) != job


def test_topology_is_provisioned_before_the_logins_that_use_it() -> None:
    [job] = [d for d in render("default") if d["kind"] == "Job"]
    spec = job["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["topology"]
    assert [c["name"] for c in spec["containers"]] == ["accounts"]


def test_a_new_run_id_runs_provisioning_again() -> None:
    assert provisioning_job(["--set", "provisioning.runId=rotated"]) != provisioning_job([])
