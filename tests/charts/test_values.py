"""Image values as users of Bitnami's charts and the OpenTelemetry demo's
expect them: per component and global, by digest, with pull secrets, the tag
defaulting to the chart's appVersion; the schema accepts them (and `global`,
so that the chart can be a subchart) and rejects malformed references."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from tests.charts.test_wiring import CHART, HELM, pod_specs, render, render_with

DIGEST = "sha256:" + "0123456789abcdef" * 4


def images(docs: list[dict[str, Any]]) -> dict[str, str]:
    """container name -> image, over every pod (one name, one image)."""
    found: dict[str, str] = {}
    for _, spec in pod_specs(docs):
        for container in spec.get("initContainers", []) + spec["containers"]:
            found[container["name"]] = container["image"]
    return found


def app_version() -> str:
    return str(yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])


def test_the_tag_of_our_images_defaults_to_the_app_version() -> None:
    found = images(render("default"))
    assert found["order-service"] == f"reference/order-service:{app_version()}"
    assert found["outbox-relay"] == f"reference/outbox-relay:{app_version()}"


def test_each_image_can_be_set_per_component_and_by_digest() -> None:
    found = images(
        render_with(
            [
                "--set", "image.tag=1.2.3",
                "--set", "services.point-service.image.registry=registry.example.com:5000",
                "--set", "services.point-service.image.repository=team/points",
                "--set", f"services.order-service.image.digest={DIGEST}",
                "--set", "kafka.image.registry=mirror.example.com",
                "--set", f"postgresql.image.digest={DIGEST}",
            ]
        )
    )  # fmt: skip
    assert found["point-service"] == "registry.example.com:5000/team/points:1.2.3"
    assert found["order-service"] == f"reference/order-service@{DIGEST}"
    assert found["notification-service"] == "reference/notification-service:1.2.3"
    assert found["kafka"] == "mirror.example.com/apache/kafka:4.3.1"
    assert found["postgresql"] == f"postgres@{DIGEST}"


def test_the_global_registry_and_pull_secrets_reach_every_pod() -> None:
    docs = render_with(
        [
            "--set", "global.imageRegistry=mirror.example.com:5000",
            "--set", "global.imagePullSecrets[0]=from-parent",
            "--set", "imagePullSecrets[0].name=ours",
            "--set", "global.someOtherChart.enabled=true",
        ]
    )  # fmt: skip
    specs = pod_specs(docs)
    assert specs
    for pod, spec in specs:
        assert spec["imagePullSecrets"] == [{"name": "from-parent"}, {"name": "ours"}], pod
        for container in spec.get("initContainers", []) + spec["containers"]:
            assert container["image"].startswith("mirror.example.com:5000/"), pod


@pytest.mark.parametrize(
    "bad",
    [
        "services.order-service.image.digest=sha256:nothex",
        "kafka.image.registry=https://registry.example.com",
        "kafka.image.repository=Apache/Kafka",
        "image.pullPolicy=Sometimes",
        "kafka.image.tag=",
        "redis.image.repository=Redis",
        "liveFeed.traceUiUrl=localhost:16686",
    ],
)
def test_the_schema_rejects_a_malformed_image(bad: str) -> None:
    result = subprocess.run(
        [str(HELM), "template", "reference", str(CHART), "--set", bad],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "schema" in result.stderr, result.stderr


def test_every_name_fits_with_the_longest_release_name() -> None:
    """Helm allows release names of 53 characters: every object name, with the
    suffix the chart adds, stays a valid DNS label and unique."""
    release = ("a-long-release-name-" * 3)[:53]
    out = subprocess.run(
        [str(HELM), "template", release, str(CHART), "--kube-version", "1.31.0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), "unique per kind"
    for kind, name in names:
        assert len(name) <= 63, (kind, name)
        assert not name.endswith("-"), (kind, name)
    for doc in docs:
        if doc["kind"] == "StatefulSet":
            # controller-revision-hash = <name>-<10 characters>, a label value.
            assert len(doc["metadata"]["name"]) + 11 <= 63


def test_full_name_override_names_every_object() -> None:
    docs = render_with(["--set", "fullnameOverride=shop"])
    for doc in docs:
        assert doc["metadata"]["name"].startswith("shop-"), doc["metadata"]["name"]


def test_scheduling_applies_to_every_pod_and_a_component_block_wins() -> None:
    docs = render_with(
        [
            "--set", "scheduling.nodeSelector.pool=apps",
            "--set", "scheduling.priorityClassName=system-high",
            "--set", "kafka.scheduling.nodeSelector.pool=data",
            "--set", "scheduling.topologySpreadConstraints[0].maxSkew=1",
            "--set", "scheduling.topologySpreadConstraints[0].topologyKey=zone",
            "--set", "scheduling.topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
        ]
    )  # fmt: skip
    specs = dict(pod_specs(docs))
    assert len(specs) == 14
    for pod, spec in specs.items():
        assert spec["nodeSelector"] == {"pool": "data" if pod == "reference-kafka" else "apps"}
        assert spec["priorityClassName"] == "system-high"
        [spread] = spec["topologySpreadConstraints"]
        own = pod.removeprefix("reference-").rsplit("-", 1)[0] if "provision" in pod else None
        name = spread["labelSelector"]["matchLabels"]["app.kubernetes.io/name"]
        assert name == (own or pod.removeprefix("reference-")), pod


def renders(values: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HELM), "template", "reference", str(CHART), *values], capture_output=True, text=True
    )


def test_the_connection_budget_must_fit_in_postgresqls_limit() -> None:
    """Defaults: order (1 + 1 surge) x (4 + 2 + relay 4) = 20, point 7 x 10 =
    70, notification 5 x 6 = 30: 120 of 150 - 10 reserved. Two more point
    replicas fit exactly (140); a third does not."""
    assert renders(["--set", "services.point-service.autoscaling.maxReplicas=8"]).returncode == 0
    refused = renders(["--set", "services.point-service.autoscaling.maxReplicas=9"])
    assert refused.returncode != 0
    assert "may open 150 connections" in refused.stderr
    assert "is 140" in refused.stderr


def test_pool_sizes_reach_the_services_and_are_not_set_twice() -> None:
    configmaps = {
        d["metadata"]["name"]: d["data"] for d in render("default") if d["kind"] == "ConfigMap"
    }
    env = configmaps["reference-order-service-env"]
    assert (env["DATABASE_POOL_SIZE"], env["DATABASE_MAX_OVERFLOW"]) == ("4", "2")
    refused = renders(["--set-string", "services.order-service.env.DATABASE_POOL_SIZE=50"])
    assert refused.returncode != 0
    assert "services.order-service.env.DATABASE_POOL_SIZE" in refused.stderr
