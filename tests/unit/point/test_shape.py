"""The shape every service keeps (so that a new one is a copy): a domain that
knows no wire, use cases that know no broker and no SQL, short functions, and
an in-memory unit of work that is the real one's twin."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import point_service
from point_service.adapters.repository import PointsRepository, SqlPointsRepository
from point_service.service_layer.unit_of_work import PointsUnitOfWork, UnitOfWork
from tests.support.shape import imported, longer_functions, python_modules, signatures, unlike
from tests.unit.point.builders import FLOW
from tests.unit.point.fakes import FakeDatabase, FakePointsRepository, FakeUnitOfWork

SOURCE = Path(point_service.__file__).parent
WIRE_OR_STORAGE = {"messaging", "faststream", "pydantic", "sqlalchemy", "aiokafka", "aio_pika"}


@pytest.mark.parametrize("path", python_modules(SOURCE, "domain"), ids=lambda p: p.name)
def test_the_domain_knows_no_wire_and_no_storage(path: Path) -> None:
    assert imported(path) & WIRE_OR_STORAGE == set()


@pytest.mark.parametrize("name", ["handlers.py", "messages.py"])
def test_the_use_cases_know_no_broker_and_no_sql(name: str) -> None:
    path = SOURCE / "service_layer" / name
    assert imported(path) & {"faststream", "sqlalchemy", "aiokafka", "aio_pika"} == set()


def test_no_function_is_longer_than_60_lines() -> None:
    assert longer_functions(SOURCE, 60) == []


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
    assert set(signatures(protocol, implementation)) == members
    assert unlike(protocol, implementation) == {}


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
