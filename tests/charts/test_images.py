"""Offline tests that the chart's containers run what the images hold: every
image the chart names is a target of deploy/docker/Dockerfile that `make
kind-up` builds and loads, every command a container runs is a console script
installed in that image, and the pods run as the image's user."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.charts.test_wiring import VALUES, by_kind, live_feed_rendered, pod_specs, render

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
SERVICES = ROOT / "services"


def stages() -> dict[str, list[str]]:
    """Dockerfile stage name -> its instructions (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        start = re.fullmatch(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if start:
            current = found.setdefault(start.group(1), [line])
        else:
            current.append(line)
    return found


def workspace_packages() -> dict[str, dict[str, Any]]:
    projects = (tomllib.loads(p.read_text()) for p in SERVICES.glob("*/pyproject.toml"))
    return {p["project"]["name"]: p for p in projects}


def scripts_of(package: str, packages: dict[str, dict[str, Any]]) -> set[str]:
    """The console scripts a package and its workspace dependencies install."""
    project = packages[package]
    found = set(project["project"].get("scripts", {}))
    for requirement in project["project"].get("dependencies", []):
        name = re.split(r"[=<>!~\[; ]", requirement, maxsplit=1)[0]
        if name in packages:
            found |= scripts_of(name, packages)
    return found


def image_targets() -> dict[str, set[str]]:
    """Final image target -> the console scripts its virtualenv holds."""
    all_stages, packages = stages(), workspace_packages()
    targets = {}
    for name, instructions in all_stages.items():
        copies = [i for i in instructions if re.match(rf"COPY\s+--from=build-{name}\b", i)]
        if not copies:
            continue
        [sync] = [
            i for i in all_stages[f"build-{name}"] if i.startswith("RUN") and " uv sync " in i
        ]
        synced = re.findall(r"--package\s+(\S+)", sync)
        assert synced, f"build-{name} syncs named packages"
        assert "--frozen" in sync, f"build-{name}: the locked versions"
        assert "--no-dev" in sync, f"build-{name}: no dev tools"
        targets[name] = set().union(*(scripts_of(p, packages) for p in synced))
    return targets


def built_by_make() -> set[str]:
    match = re.search(r"^IMAGES\s*:=\s*(.+)$", (ROOT / "mk/charts.mk").read_text(), re.M)
    assert match, "mk/charts.mk lists IMAGES"
    return set(match.group(1).split())


def test_make_builds_every_target_of_the_dockerfile() -> None:
    assert built_by_make() == set(image_targets())


def test_each_target_starts_a_script_its_image_holds() -> None:
    for name, scripts in image_targets().items():
        [entrypoint] = [i for i in stages()[name] if i.startswith("ENTRYPOINT")]
        assert re.fullmatch(r'ENTRYPOINT \["([^"]+)"\]', entrypoint), f"{name}: one process"
        assert entrypoint.split('"')[1] in scripts, f"{name}: {entrypoint}"


@pytest.mark.parametrize("label", list(VALUES))
def test_every_container_of_ours_runs_a_script_of_its_image(label: str) -> None:
    docs = render(label)
    targets = image_targets()
    [runtime_user] = [i.split()[1] for i in stages()["runtime"] if i.startswith("USER")]
    uid, gid = (int(part) for part in runtime_user.split(":"))
    helm_tests = {
        p["metadata"]["name"]
        for p in by_kind(docs, "Pod")
        if p["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"
    }
    assert helm_tests, "a helm test"
    checked = 0
    for pod, spec in pod_specs(docs):
        for container in spec.get("initContainers", []) + spec["containers"]:
            # <registry>/<repository>/<target>:<tag>; third-party images are not ours.
            image = container["image"].rsplit("/", 1)[-1].rsplit(":", 1)[0]
            if image not in targets:
                continue
            command = container.get("command") or []
            assert command, f"{pod}/{container['name']} names its command"
            if pod in helm_tests:  # a short script run with the service's python
                assert command[:2] == ["python", "-c"], f"{pod}: {command}"
            else:
                assert command[0] in targets[image], f"{pod}/{container['name']}: {command}"
            security = {**spec.get("securityContext", {}), **container.get("securityContext", {})}
            assert (security.get("runAsUser"), security.get("runAsGroup")) == (uid, gid)
            checked += 1
    # 3 apps, their 3 migrations, 2 relays, 2 provisioning steps, the helm
    # test; the live feed where there is a Redis.
    assert checked == 11 + live_feed_rendered(docs)


def pinned_versions() -> dict[str, str]:
    text = (ROOT / "tools" / "versions.mk").read_text()
    return dict(re.findall(r"^([A-Z_]+)\s*:=\s*(\S+)", text, re.M))


def test_the_local_images_are_tagged_with_the_versions_they_are_built_from() -> None:
    """deploy/k8s/kind/images.sh builds each infrastructure image under the tag
    values-local-images.yaml names, from the pinned sources: the tag must say
    which version that is."""
    values = yaml.safe_load((ROOT / "deploy/helm/values-local-images.yaml").read_text())
    v = pinned_versions()
    suite = v["DEBIAN_SUITE"]
    images = {
        name: f"{block['image']['repository']}:{block['image']['tag']}"
        for name, block in values.items()
        if "image" in block
    }
    assert images == {
        "kafka": f"reference/kafka:{v['KAFKA_VERSION']}",
        "jaeger": f"reference/jaeger:{v['JAEGER_VERSION']}",
        "mailpit": f"reference/mailpit:{v['MAILPIT_VERSION']}",
        "rabbitmq": f"reference/rabbitmq:{suite}",
        "postgresql": f"reference/postgresql:15-{suite}",
        "prometheus": f"reference/prometheus:{suite}",
        "redis": f"reference/redis:{suite}",
    }


def test_the_chart_installs_the_kafka_the_local_stack_runs() -> None:
    """The public image of the default install is the Kafka release whose jars
    the local stack runs and tests (RabbitMQ and PostgreSQL: the integration
    test tests/integration/test_versions.py asks the running servers)."""
    values = yaml.safe_load((ROOT / "deploy/helm/reference-system/values.yaml").read_text())
    assert values["kafka"]["image"]["tag"] == pinned_versions()["KAFKA_VERSION"]


def test_the_local_images_path_pulls_nothing_and_runs_each_image_as_its_user() -> None:
    """Every container of the kind install without a registry runs an image
    built here (deploy/docker/Dockerfile or deploy/docker/<component>/), never
    pulled, as the user that image declares."""
    targets = image_targets()
    checked = set()
    for pod, spec in pod_specs(render("local-images")):
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{pod}/{container['name']}"
            repository, _, _ = container["image"].rpartition(":")
            assert repository.startswith("reference/"), f"{where}: {container['image']}"
            assert container.get("imagePullPolicy") == "Never", where
            name = repository.removeprefix("reference/")
            if name in targets:
                continue
            dockerfile = ROOT / "deploy" / "docker" / name / "Dockerfile"
            assert dockerfile.exists(), f"{where}: no {dockerfile.relative_to(ROOT)}"
            [user] = re.findall(r"^USER\s+(\d+):(\d+)\s*$", dockerfile.read_text(), re.M)
            security = {**spec.get("securityContext", {}), **container.get("securityContext", {})}
            assert (str(security.get("runAsUser")), str(security.get("runAsGroup"))) == user, where
            checked.add(name)
    assert checked == {
        "kafka",
        "rabbitmq",
        "postgresql",
        "prometheus",
        "jaeger",
        "mailpit",
        "redis",
    }
