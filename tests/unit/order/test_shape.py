"""The shape every service keeps (so that a new one is a copy): a domain that
knows no wire, use cases that know no HTTP, broker or SQL, short functions,
and an in-memory unit of work that is the real one's twin."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import order_service
from order_service.adapters.idempotency_keys import (
    IdempotencyKeyRepository,
    SqlIdempotencyKeyRepository,
)
from order_service.adapters.repository import OrderRepository, SqlOrderRepository
from order_service.service_layer.unit_of_work import OrdersUnitOfWork, UnitOfWork
from tests.support.shape import imported, longer_functions, python_modules, signatures, unlike
from tests.unit.order.builders import FLOW
from tests.unit.order.fakes import (
    FakeDatabase,
    FakeIdempotencyKeyRepository,
    FakeOrderRepository,
    FakeUnitOfWork,
)

SOURCE = Path(order_service.__file__).parent
WIRE = {"catalogue", "messaging", "faststream", "pydantic", "aiokafka", "aio_pika"}
STORAGE = {"sqlalchemy", "asyncpg"}
HTTP = {"fastapi", "starlette", "httpx"}


@pytest.mark.parametrize("path", python_modules(SOURCE, "domain"), ids=lambda p: p.name)
def test_the_domain_knows_no_wire_and_no_storage(path: Path) -> None:
    assert imported(path) & (WIRE | STORAGE | HTTP) == set()


@pytest.mark.parametrize("name", ["handlers.py", "messages.py"])
def test_the_use_cases_know_no_http_no_broker_and_no_sql(name: str) -> None:
    path = SOURCE / "service_layer" / name
    assert imported(path) & ({"faststream", "aiokafka", "aio_pika"} | STORAGE | HTTP) == set()


def test_no_function_is_longer_than_60_lines() -> None:
    assert longer_functions(SOURCE, 60) == []


UNIT_OF_WORK = {"orders", "idempotency_keys", "__aenter__", "__aexit__", "commit"}
ORDERS = {"add", "get", "list_by_customer", "count_by_customer", "save_status"}
KEYS = {"claim", "remember"}


@pytest.mark.parametrize(
    ("protocol", "implementation", "members"),
    [
        (OrdersUnitOfWork, UnitOfWork, UNIT_OF_WORK),
        (OrdersUnitOfWork, FakeUnitOfWork, UNIT_OF_WORK),
        (OrderRepository, SqlOrderRepository, ORDERS),
        (OrderRepository, FakeOrderRepository, ORDERS),
        (IdempotencyKeyRepository, SqlIdempotencyKeyRepository, KEYS),
        (IdempotencyKeyRepository, FakeIdempotencyKeyRepository, KEYS),
    ],
    ids=["sql-uow", "fake-uow", "sql-orders", "fake-orders", "sql-keys", "fake-keys"],
)
def test_both_implementations_have_the_protocols_members(
    protocol: type, implementation: type, members: set[str]
) -> None:
    assert set(signatures(protocol, implementation)) == members
    assert unlike(protocol, implementation) == {}


def test_both_units_of_work_type_check_as_the_protocol() -> None:
    """mypy checks these assignments; at run time, they open without a database."""
    units: list[OrdersUnitOfWork] = [
        UnitOfWork(async_sessionmaker(), FLOW),
        FakeUnitOfWork(FakeDatabase(), FLOW),
    ]
    orders: list[OrderRepository] = [
        SqlOrderRepository(AsyncSession()),
        FakeOrderRepository(FakeDatabase().committed),
    ]
    keys: list[IdempotencyKeyRepository] = [
        SqlIdempotencyKeyRepository(AsyncSession()),
        FakeIdempotencyKeyRepository(FakeDatabase().committed),
    ]
    assert len(units) == len(orders) == len(keys) == 2
