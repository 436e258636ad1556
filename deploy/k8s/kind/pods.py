#!/usr/bin/python3
"""Reads the release's pods (`kubectl get pods -o json` on stdin) for cluster.sh.

pods.py ready       "<ready> <total>", completed Job pods left out
pods.py unready     one line per pod that is not ready, with its containers' reasons
pods.py restarts    the total of container restarts; one line per restarted
                    container on stderr, with how its last run ended
pods.py junit FILE  "<passed> <ran> <skipped>" of a pytest JUnit report (no stdin)
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from typing import Any


def pods() -> list[dict[str, Any]]:
    return list(json.load(sys.stdin)["items"])


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    status = pod["status"]
    return list(status.get("initContainerStatuses", []) + status.get("containerStatuses", []))


def is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", [])
    )


def running(pod: dict[str, Any]) -> bool:
    """Should run: neither a completed Job pod nor one being deleted (the old
    replica of a rolling update)."""
    finished = pod["status"].get("phase") in ("Succeeded", "Failed")
    return not finished and "deletionTimestamp" not in pod["metadata"]


def ready() -> None:
    alive = [p for p in pods() if running(p)]
    print(sum(map(is_ready, alive)), len(alive))


def unready() -> None:
    for pod in pods():
        if not running(pod) or is_ready(pod):
            continue
        reasons = []
        for c in containers(pod):
            state = c.get("state", {})
            reason = (state.get("waiting") or state.get("terminated") or {}).get("reason")
            if reason or not c.get("ready"):
                reasons.append(
                    f"{c['name']}: {reason or 'not ready'}, {c['restartCount']} restarts"
                )
        name, phase = pod["metadata"]["name"], pod["status"].get("phase")
        print(f"  {name} ({phase}): {'; '.join(reasons) or 'not ready'}")


def restarts() -> None:
    total = 0
    for pod in pods():
        for c in containers(pod):
            if not c.get("restartCount"):
                continue
            total += c["restartCount"]
            last = c.get("lastState", {}).get("terminated")
            how = f"exit {last.get('exitCode')}, {last.get('reason')}" if last else "not recorded"
            print(
                f"kind: restarts: {pod['metadata']['name']}/{c['name']}: {c['restartCount']}"
                f" (last run ended: {how})",
                file=sys.stderr,
            )
    print(total)


def junit(path: str) -> None:
    root = ET.parse(path).getroot()  # noqa: S314 - the report our own pytest just wrote
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None, f"no testsuite in {path}"
    total, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
    bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    print(total - skipped - bad, total - skipped, skipped)


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "junit":
        junit(sys.argv[2])
    else:
        {"ready": ready, "unready": unready, "restarts": restarts}[command]()
