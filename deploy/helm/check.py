"""`make charts-check`: the Helm chart, validated offline.

For the default values, values-production.yaml and values-local-images.yaml (the
kind path without a registry):

1. `helm lint --strict` and `helm template` with an explicit --kube-version;
2. every rendered manifest validated strictly against the Kubernetes OpenAPI
   schemas of that version (kubernetes-validate, offline); the custom
   resources (PrometheusRule, PodMonitor) against the CRDs of the pinned
   prometheus-operator, made strict the same way (--crds: make fetches them as
   a Go module), the rules also with `promtool check rules`; the bundled
   Prometheus's configuration with `promtool check config`;
3. kube-score on everything rendered; a finding is allowed only if
   lint-exceptions.yaml explains it (per check, or per object through a
   `kube-score/ignore` annotation that the file must also explain);
4. the rendering compared with the committed golden manifests in golden/
   (generated secrets masked), so a change to what the chart produces shows
   up in review (`make charts-golden` rewrites them);
5. the chart's copies of the dashboards and alert rules are the files of
   deploy/observability/ (`make charts-sync` copies them).

Ends with one line: `charts=N manifests=N schema_errors=N lint_findings=N golden_diffs=N`.
"""

from __future__ import annotations

import argparse
import difflib
import filecmp
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate
import values_table
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CHART = HERE / "reference-system"
GOLDEN = HERE / "golden"
KUBE_VERSION = "1.31.0"
RELEASE, NAMESPACE = "reference", "reference"
VALUE_SETS: dict[str, list[str]] = {
    "default": [],
    "production": ["-f", str(HERE / "values-production.yaml")],
    # The kind path on a machine without a registry (deploy/k8s/kind/cluster.sh).
    "local-images": [
        "-f",
        str(HERE / "values-local-images.yaml"),
        "--set",
        "image.pullPolicy=Never",
    ],
}
TOOLS = ROOT / ".tools" / "bin"


def tool(name: str) -> str:
    local = TOOLS / name
    return str(local) if local.exists() else name


class RenderError(Exception):
    pass


def run(args: list[str]) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RenderError(f"{' '.join(args[:3])} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def render(values: list[str]) -> str:
    return run(
        [
            tool("helm"), "template", RELEASE, str(CHART), *values,
            "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION,
        ]
    )  # fmt: skip


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def masked(text: str) -> str:
    """The rendering with generated secret values replaced (they are random),
    and what is derived from them: the pods' checksum/secret annotations and
    the digest in the provisioning Job's name."""
    out = []
    for doc in documents(text):
        if doc["kind"] == "Secret":
            doc["data"] = dict.fromkeys(doc.get("data", {}), "<generated>")
        annotations = doc.get("spec", {}).get("template", {}).get("metadata", {})
        annotations = annotations.get("annotations", {})
        if "checksum/secret" in annotations:
            annotations["checksum/secret"] = "<digest of generated secrets>"
        out.append(yaml.safe_dump(doc, sort_keys=True))
    return re.sub(r"-provision-[0-9a-f]{8}\b", "-provision-<digest>", "---\n".join(out))


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A CRD's schema that, like kubernetes-validate's strict schemas, rejects
    fields it does not declare (where the CRD does not keep unknown fields)."""
    out = {k: strict(v) if isinstance(v, dict) else v for k, v in schema.items()}
    if "items" in out and isinstance(out["items"], dict):
        out["items"] = strict(out["items"])
    if "properties" in out:
        out["properties"] = {k: strict(v) for k, v in schema["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
    return out


def crd_schemas(directory: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict schema, from the CRD files in directory."""
    schemas = {}
    for path in sorted(directory.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = strict(version["schema"]["openAPIV3Schema"])
            schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def schema_errors(
    docs: list[dict[str, Any]], crds: dict[tuple[str, str], dict[str, Any]]
) -> list[str]:
    errors = []
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        crd = crds.get((doc["apiVersion"], doc["kind"]))
        if crd is not None:
            errors += [
                f"{name}: {error.message} at {'/'.join(map(str, error.path))}"
                for error in jsonschema.Draft7Validator(crd).iter_errors(doc)
            ]
            if doc["kind"] == "PrometheusRule":
                errors += promtool_errors(name, ["check", "rules"], doc["spec"])
            continue
        if doc["kind"] == "ConfigMap" and "prometheus.yml" in doc.get("data", {}):
            config = yaml.safe_load(doc["data"]["prometheus.yml"])
            errors += promtool_errors(name, ["check", "config", "--syntax-only"], config)
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{name}: {exc.message} at {'/'.join(map(str, exc.path))}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{name}: no schema for {doc['apiVersion']} {doc['kind']}")
    return errors


def promtool_errors(name: str, command: list[str], content: dict[str, Any]) -> list[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
        yaml.safe_dump(content, f)
        f.flush()
        done = subprocess.run(
            [tool("promtool"), *command, f.name], capture_output=True, text=True, check=False
        )
    return [] if done.returncode == 0 else [f"{name}: {done.stdout}{done.stderr}"]


def lint_findings(text: str, exceptions: dict[str, Any], label: str) -> list[str]:
    checks = {
        **exceptions.get("checks", {}),
        **exceptions.get("checks_by_values", {}).get(label, {}),
    }
    args = [tool("kube-score"), "score", "-", "--output-format", "ci"]
    args += [a for check in checks for a in ("--ignore-test", check)]
    done = subprocess.run(args, input=text, capture_output=True, text=True)
    findings = [
        line for line in done.stdout.splitlines() if line.startswith(("[CRITICAL]", "[WARNING]"))
    ]
    # Every per-object ignore must be explained too.
    explained = exceptions.get("objects", {})
    for doc in documents(text):
        pod = doc.get("spec", {}).get("template", {}).get("metadata", {})
        for meta in (doc.get("metadata", {}), pod):
            ignored = (meta.get("annotations") or {}).get("kube-score/ignore")
            if ignored:
                for check in ignored.split(","):
                    key = f"{doc['kind']}/{doc['metadata']['name']}:{check.strip()}"
                    if key not in explained:
                        findings.append(f"[UNEXPLAINED] {key} (kube-score/ignore)")
    return findings


def sync_errors() -> list[str]:
    pairs = [
        (ROOT / "deploy/observability/dashboards", CHART / "files/dashboards", "*.json"),
        (ROOT / "deploy/observability/rules", CHART / "files/rules", "*.yml"),
    ]
    errors = []
    for source, copy, pattern in pairs:
        names = {p.name for p in source.glob(pattern)} | {p.name for p in copy.glob(pattern)}
        for name in sorted(names):
            a, b = source / name, copy / name
            if not (a.exists() and b.exists() and filecmp.cmp(a, b, shallow=False)):
                errors.append(f"{b.relative_to(ROOT)} differs from {a.relative_to(ROOT)}")
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--update-golden", action="store_true")
    parser.add_argument(
        "--crds", type=Path, required=True, help="directory of the custom resources' CRDs"
    )
    args = parser.parse_args()
    crds = crd_schemas(args.crds)
    os.environ.setdefault("HELM_CACHE_HOME", tempfile.mkdtemp(prefix="helm-cache-"))
    exceptions = yaml.safe_load((HERE / "lint-exceptions.yaml").read_text())
    problems: list[str] = []
    manifests = schema = lint = golden = 0
    problems += sync_errors()
    for label, values in VALUE_SETS.items():
        # A chart that fails to lint or render is counted, not a crash: the
        # summary line is printed whatever happens.
        try:
            run(
                [
                    tool("helm"),
                    "lint",
                    "--strict",
                    str(CHART),
                    *values,
                    "--kube-version",
                    KUBE_VERSION,
                ]
            )
        except RenderError as exc:
            lint += 1
            problems.append(f"{label}: {exc}")
        try:
            text = render(values)
        except RenderError as exc:
            schema += 1
            problems.append(f"{label}: {exc}")
            continue
        docs = documents(text)
        manifests += len(docs)
        errors = schema_errors(docs, crds)
        schema += len(errors)
        findings = lint_findings(text, exceptions, label)
        lint += len(findings)
        problems += [f"{label}: {e}" for e in errors + findings]
        path = GOLDEN / f"{label}.yaml"
        rendered = masked(text)
        if args.update_golden:
            GOLDEN.mkdir(exist_ok=True)
            path.write_text(rendered)
        elif not path.exists() or path.read_text() != rendered:
            golden += 1
            before = path.read_text().splitlines() if path.exists() else []
            diff = difflib.unified_diff(before, rendered.splitlines(), str(path), "rendered", n=1)
            problems.append(f"{label}: rendering differs from {path.name}:\n" + "\n".join(diff))
    if args.update_golden:
        values_table.update()
    elif values_table.stale():
        golden += 1
        problems.append(f"{values_table.README.relative_to(ROOT)}: values table stale")
    for problem in problems:
        print(problem)
    print(
        f"charts=1 manifests={manifests} schema_errors={schema} lint_findings={lint} "
        f"golden_diffs={golden}"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
