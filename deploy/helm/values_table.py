"""The values table of the chart's README, generated from values.schema.json.

Every key the schema declares, with its type (and allowed values or
pattern), its default from values.yaml and its description: the schema's
`description`, else the comment above the key in values.yaml. `make
charts-golden` rewrites the table between the README's markers; `make
charts-check` fails when it is stale.

Written here rather than taken from a library: helm-docs documents
values.yaml from its comments alone (not the schema), and the JSON-schema to
Markdown generators render a schema as nested sections without the chart's
defaults; the table users of Bitnami's charts expect needs both.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent / "reference-system"
README = CHART / "README.md"
BEGIN, END = "<!-- values-table:begin -->", "<!-- values-table:end -->"
Row = tuple[str, str, str, str]


def comments(values_text: str) -> dict[str, str]:
    """dotted key -> the comment block right above it in values.yaml."""
    found: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    for line in values_text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = re.match(r"^(\s*)([A-Za-z0-9_.-]+):", line)
        if not match:
            pending = []
            continue
        indent, key = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        text = " ".join(p for p in pending if p and not p.startswith("---"))
        if text:
            found[".".join(k for _, k in stack)] = text
        pending = []
    return found


def resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not ref:
        return schema
    target = root
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in schema.items() if k != "$ref"}}


def kind(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    if "oneOf" in schema:
        return " or ".join(kind(s) for s in schema["oneOf"])
    typ = schema.get("type", "any")
    text = " or ".join(typ) if isinstance(typ, list) else str(typ)
    if typ == "array" and isinstance(schema.get("items"), dict):
        text += f" of {kind(schema['items'])}"
    return text


def default(values: Any, path: list[str]) -> str:
    for key in path:
        if not isinstance(values, dict) or key not in values:
            return ""
        values = values[key]
    if isinstance(values, dict) and len(json.dumps(values)) > 60:
        return "see values.yaml"
    return f"`{json.dumps(values)}`"


def rows(
    schema: dict[str, Any],
    root: dict[str, Any],
    values: Any,
    notes: dict[str, str],
    path: list[str],
) -> list[Row]:
    schema = resolve(schema, root)
    properties = schema.get("properties")
    if path == ["services"]:
        return service_rows(schema, root, values, notes)
    # A component's resources and scheduling are one row each.
    leaf = path[-1:] == ["resources"] or (len(path) > 1 and path[-1] == "scheduling")
    if schema.get("type") == "object" and properties and not leaf:
        out: list[Row] = []
        for key, sub in properties.items():
            out += rows(sub, root, values, notes, [*path, key])
        return out
    key = ".".join(path)
    description = schema.get("description") or notes.get(key, "")
    return [(key, kind(schema), default(values, path), description.replace("|", "\\|"))]


def service_rows(
    schema: dict[str, Any], root: dict[str, Any], values: Any, notes: dict[str, str]
) -> list[Row]:
    """The services share one schema: their keys once, as services.<name>.…,
    with the default each service has."""
    names = list(schema["properties"])
    first = rows(schema["properties"][names[0]], root, values, notes, ["services", names[0]])
    out = []
    for key, typ, _, description in first:
        rest = key.split(".", 2)[2]
        defaults = {default(values, ["services", name, *rest.split(".")]) for name in names}
        if len(defaults) == 1:
            value = defaults.pop()
        else:
            value = ", ".join(
                f"{name}: {default(values, ['services', name, *rest.split('.')]) or '—'}"
                for name in names
            )
        if not description:
            description = next(
                (notes[f"services.{n}.{rest}"] for n in names if f"services.{n}.{rest}" in notes),
                "",
            )
        out.append((f"services.<name>.{rest}", typ, value, description))
    return out


def table() -> str:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values_text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(values_text)
    lines = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for key, typ, value, description in rows(schema, schema, values, comments(values_text), []):
        lines.append(f"| `{key}` | {typ} | {value} | {description} |")
    return "\n".join(lines)


def with_table(readme: str) -> str:
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return f"{readme[:start]}\n{table()}\n{readme[end:]}"


def stale() -> bool:
    readme = README.read_text()
    return with_table(readme) != readme


def update() -> None:
    README.write_text(with_table(README.read_text()))
