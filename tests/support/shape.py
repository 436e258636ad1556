"""What a service's test_shape.py checks, for any service: the top-level
packages a module imports, functions over a length, and whether a class has
the members of a Protocol with the same parameters."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any


def python_modules(root: Path, *parts: str) -> list[Path]:
    return sorted(root.joinpath(*parts).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """The top-level packages a module imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def longer_functions(root: Path, max_lines: int) -> list[str]:
    """`module:function (n lines)` of every function below `root` longer than
    `max_lines`, decorators included."""
    long = []
    for path in python_modules(root):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = (node.end_lineno or node.lineno) - start + 1
                if length > max_lines:
                    long.append(f"{path.relative_to(root)}:{node.name} ({length} lines)")
    return long


def signatures(protocol: type, implementation: type) -> dict[str, tuple[Any, Any]]:
    """Per member of `protocol` (its own and those of the Protocols it extends):
    its parameter names there and in `implementation` ('attribute' for a
    property, None where the implementation lacks it)."""

    def shape(cls: type, name: str) -> Any:
        member = inspect.getattr_static(cls, name, None)
        if isinstance(member, property) or name in inspect.get_annotations(cls):
            return "attribute"
        return None if member is None else list(inspect.signature(member).parameters)

    protocols = [c for c in protocol.__mro__ if getattr(c, "_is_protocol", False)]
    members = {
        name
        for cls in protocols
        for name, value in vars(cls).items()
        if (isinstance(value, property) or inspect.isfunction(value))
        and (not name.startswith("_") or name in {"__aenter__", "__aexit__"})
    }
    return {name: (shape(protocol, name), shape(implementation, name)) for name in members}


def unlike(protocol: type, implementation: type) -> dict[str, Any]:
    """The members of `protocol` that `implementation` lacks or takes other
    parameters for: name -> what `implementation` has."""
    shapes = signatures(protocol, implementation)
    return {name: theirs for name, (ours, theirs) in shapes.items() if ours != theirs}


def differences(protocol: type, implementation: type) -> tuple[set[str], dict[str, Any]]:
    """The protocol's members, and those the implementation has otherwise."""
    return set(signatures(protocol, implementation)), unlike(protocol, implementation)
