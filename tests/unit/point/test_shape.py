"""The shape every service keeps (so that a new one is a copy): a domain that
knows no wire, use cases that know no broker and no SQL, short functions, and
an in-memory unit of work that is the real one's twin."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import point_service
from point_service.adapters.repository import PointsRepository, SqlPointsRepository
from point_service.service_layer.unit_of_work import PointsUnitOfWork, UnitOfWork
from tests.unit.point.builders import FLOW
from tests.unit.point.fakes import FakeDatabase, FakePointsRepository, FakeUnitOfWork

SOURCE = Path(point_service.__file__).parent
MAX_FUNCTION_LINES = 60


def modules(*parts: str) -> list[Path]:
    return sorted((SOURCE.joinpath(*parts)).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """The top-level packages a module imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", modules("domain"), ids=lambda p: p.name)
def test_the_domain_knows_no_wire_and_no_storage(path: Path) -> None:
    wire_or_storage = {"messaging", "faststream", "pydantic", "sqlalchemy", "aiokafka", "aio_pika"}
    assert imported(path) & wire_or_storage == set()


@pytest.mark.parametrize("name", ["handlers.py", "messages.py"])
def test_the_use_cases_know_no_broker_and_no_sql(name: str) -> None:
    path = SOURCE / "service_layer" / name
    assert imported(path) & {"faststream", "sqlalchemy", "aiokafka", "aio_pika"} == set()


def test_no_function_is_longer_than_60_lines() -> None:
    long = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = (node.end_lineno or node.lineno) - start + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(SOURCE)}:{node.name} ({length} lines)")
    assert long == []


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


UNIT_OF_WORK = {"points", "__aenter__", "__aexit__", "first_delivery", "commit"}
REPOSITORY = {"lock_account", "save", "entry_for_order", "balance"}


@pytest.mark.parametrize(
    ("protocol", "implementation", "members"),
    [
        (PointsUnitOfWork, UnitOfWork, UNIT_OF_WORK),
        (PointsUnitOfWork, FakeUnitOfWork, UNIT_OF_WORK),
        (PointsRepository, SqlPointsRepository, REPOSITORY),
        (PointsRepository, FakePointsRepository, REPOSITORY),
    ],
    ids=["sql-uow", "fake-uow", "sql-repository", "fake-repository"],
)
def test_both_implementations_have_the_protocols_members(
    protocol: type, implementation: type, members: set[str]
) -> None:
    shapes = signatures(protocol, implementation)
    assert set(shapes) == members
    assert {n: theirs for n, (ours, theirs) in shapes.items() if ours != theirs} == {}


def test_both_units_of_work_type_check_as_the_protocol() -> None:
    """mypy checks these assignments; at run time, they open without a database."""
    units: list[PointsUnitOfWork] = [
        UnitOfWork(async_sessionmaker(), FLOW),
        FakeUnitOfWork(FakeDatabase(), FLOW),
    ]
    repositories: list[PointsRepository] = [
        SqlPointsRepository(AsyncSession()),
        FakePointsRepository(FakeDatabase().committed),
    ]
    assert len(units) == len(repositories) == 2
