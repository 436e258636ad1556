"""deploy/k8s/kind/pods.py: the figures `make kind-test` reports from the
release's pods (ready, restarts) and from the e2e suite's JUnit report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PODS = ROOT / "deploy" / "k8s" / "kind" / "pods.py"


def pod(name: str, phase: str, ready: bool, restarts: dict[str, int]) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": str(ready)}],
            "initContainerStatuses": [{"name": "migrate", "restartCount": 0, "ready": True}],
            "containerStatuses": [
                {
                    "name": container,
                    "restartCount": count,
                    "ready": ready,
                    "lastState": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                }
                for container, count in restarts.items()
            ],
        },
    }


PODS_JSON = {
    "items": [
        pod("order-service-1", "Running", True, {"order-service": 0, "outbox-relay": 1}),
        pod("kafka-0", "Running", False, {"kafka": 2}),
        pod("provision-1", "Succeeded", False, {"topology": 0}),
        {**pod("order-service-0", "Running", True, {}), "metadata": {
            "name": "order-service-0", "deletionTimestamp": "2026-12-02T17:06:00Z"}},
    ]
}  # fmt: skip


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PODS), *args], input=stdin, capture_output=True, text=True, check=True
    )


def test_ready_counts_the_pods_that_should_run() -> None:
    assert run("ready", stdin=json.dumps(PODS_JSON)).stdout.split() == ["1", "2"]


def test_unready_names_each_pod_and_container() -> None:
    out = run("unready", stdin=json.dumps(PODS_JSON)).stdout
    assert "kafka-0 (Running): kafka: not ready, 2 restarts" in out
    assert "order-service" not in out


def test_restarts_are_totalled_and_each_is_listed() -> None:
    done = run("restarts", stdin=json.dumps(PODS_JSON))
    assert done.stdout.strip() == "3"
    assert "order-service-1/outbox-relay: 1 (last run ended: exit 0, Completed)" in done.stderr


def test_junit_counts_what_ran_apart_from_what_was_skipped(tmp_path: Path) -> None:
    report = tmp_path / "e2e.xml"
    report.write_text(
        '<testsuites><testsuite tests="13" skipped="2" failures="1" errors="0"/></testsuites>'
    )
    assert run("junit", str(report)).stdout.split() == ["10", "11", "2"]
