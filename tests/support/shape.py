"""What a service's shape test reads from its source: the packages a module
imports, the functions longer than a limit, and whether an implementation has
a Protocol's members (tests/unit/<service>/test_shape.py)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any


def imported(path: Path) -> set[str]:
    """The top-level packages a module imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def long_functions(source: Path, max_lines: int) -> list[str]:
    """`module:function (n lines)` for each function below `source` longer than
    `max_lines`, its decorators included."""
    long = []
    for path in sorted(source.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = (node.end_lineno or node.lineno) - start + 1
                if length > max_lines:
                    long.append(f"{path.relative_to(source)}:{node.name} ({length} lines)")
    return long


def signatures(protocol: type, implementation: type) -> dict[str, tuple[Any, Any]]:
    """Per member of `protocol`: its parameter names there and in `implementation`
    ('attribute' for a property, None where the implementation lacks it)."""

    def shape(cls: type, name: str) -> Any:
        member = inspect.getattr_static(cls, name, None)
        if isinstance(member, property) or name in inspect.get_annotations(cls):
            return "attribute"
        return None if member is None else list(inspect.signature(member).parameters)

    members = [
        name
        for name, value in vars(protocol).items()
        if (isinstance(value, property) or inspect.isfunction(value))
        and (not name.startswith("_") or name in {"__aenter__", "__aexit__"})
    ]
    return {name: (shape(protocol, name), shape(implementation, name)) for name in members}


def differences(protocol: type, implementation: type) -> tuple[set[str], dict[str, Any]]:
    """The protocol's members, and those the implementation has otherwise (its
    parameter names, or None where it lacks the member)."""
    shapes = signatures(protocol, implementation)
    return set(shapes), {n: theirs for n, (ours, theirs) in shapes.items() if ours != theirs}
