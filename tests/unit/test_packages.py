"""The package boundaries hold: the outbox relay (and the catalogue's
provisioning, which runs in the relay's image) imports without FastStream and
SQLAlchemy installed; the messaging framework knows nothing of the catalogue,
the relay or the services; the catalogue nothing of the services; the relay
nothing of the catalogue or the services."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from catalogue import services
from catalogue.services import program

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {
    "messaging": ROOT / "services/messaging/src/messaging",
    "catalogue": ROOT / "services/catalogue/src/catalogue",
    "outbox_relay": ROOT / "services/outbox-relay/src/outbox_relay",
}
SERVICES = {program(s).replace("-", "_") for s in services.SERVICES}
# What each package must not import (by top-level package name).
FORBIDDEN = {
    "messaging": {"catalogue", "outbox_relay", *SERVICES},
    "catalogue": {"outbox_relay", *SERVICES},
    "outbox_relay": {"catalogue", *SERVICES},
}
# Imported as the relay's image runs them: the relay's modules, and the
# catalogue's provisioning commands and contracts.
WITHOUT_SERVICE_EXTRA = (
    "outbox_relay.cli",
    "outbox_relay.metrics",
    "outbox_relay.publishers",
    "outbox_relay.relay",
    "outbox_relay.settings",
    "outbox_relay.store",
    "catalogue.accounts",
    "catalogue.topology",
    "catalogue.contracts.notifications",
    "catalogue.contracts.orders",
    "catalogue.contracts.points",
)

# Run in a fresh interpreter: a finder ahead of every other one that answers
# as if the `service` extra's libraries were not installed.
WITHOUT = textwrap.dedent(
    """
    import importlib
    import importlib.abc
    import sys

    ABSENT = {"faststream", "sqlalchemy"}

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in ABSENT:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    for absent in ABSENT:
        try:
            importlib.import_module(absent)
        except ImportError:
            pass
        else:
            raise SystemExit(f"the blocker let {absent} through")
    for module in sys.argv[1:]:
        importlib.import_module(module)
    loaded = sorted(m for m in sys.modules if m.partition(".")[0] in ABSENT)
    if loaded:
        raise SystemExit(f"loaded anyway: {loaded}")
    """
)


def test_the_relay_and_provisioning_import_without_faststream_and_sqlalchemy() -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT, *WITHOUT_SERVICE_EXTRA],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def imported(source: Path) -> set[str]:
    """The top-level packages a module imports (relative imports stay within
    its own package and are left out)."""
    found = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            found |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.partition(".")[0])
    return found


@pytest.mark.parametrize("package", list(FORBIDDEN))
def test_no_package_imports_what_builds_on_it(package: str) -> None:
    modules = sorted(SOURCES[package].rglob("*.py"))
    assert modules, f"no sources under {SOURCES[package]}"
    offending = {
        str(module.relative_to(ROOT)): sorted(imported(module) & FORBIDDEN[package])
        for module in modules
        if imported(module) & FORBIDDEN[package]
    }
    assert offending == {}
