"""The shape every service keeps (so that a new one is a copy): a domain that
knows no wire, use cases that know no broker and no SQL (order's, no HTTP
either), short functions in every package, and in-memory twins of the unit of
work and the other adapters (notification's mailer)."""

from __future__ import annotations

import inspect
from pathlib import Path
from types import ModuleType
from typing import Any, get_type_hints

import pytest
from faststream import Context
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import notification_service
import order_service
import point_service
from messaging import consumer as messaging_consumer
from messaging.context import InContext
from notification_service.adapters.mailer import Mailer, SmtpMailer
from notification_service.adapters.repository import DeliveriesRepository, SqlDeliveriesRepository
from notification_service.entrypoints import consumers as notification_consumers
from notification_service.entrypoints import dependencies as notification_dependencies
from notification_service.service_layer.unit_of_work import NotificationUnitOfWork
from notification_service.service_layer.unit_of_work import UnitOfWork as NotificationSqlUnitOfWork
from order_service.adapters.idempotency_keys import (
    IdempotencyKeyRepository,
    SqlIdempotencyKeyRepository,
)
from order_service.adapters.repository import OrderRepository, SqlOrderRepository
from order_service.entrypoints import dependencies as order_dependencies
from order_service.service_layer.unit_of_work import OrdersUnitOfWork
from order_service.service_layer.unit_of_work import UnitOfWork as OrderSqlUnitOfWork
from point_service.adapters.repository import PointsRepository, SqlPointsRepository
from point_service.entrypoints import consumers as point_consumers
from point_service.entrypoints import dependencies as point_dependencies
from point_service.service_layer.unit_of_work import PointsUnitOfWork
from point_service.service_layer.unit_of_work import UnitOfWork as PointSqlUnitOfWork
from tests.support.shape import imported, longer_functions, python_modules, signatures, unlike
from tests.unit.notification import fakes as notification_fakes
from tests.unit.order import builders as order_builders
from tests.unit.order import fakes as order_fakes
from tests.unit.point import builders as point_builders
from tests.unit.point import fakes as point_fakes

ORDER = Path(order_service.__file__).parent
POINT = Path(point_service.__file__).parent
NOTIFICATION = Path(notification_service.__file__).parent
SERVICES = Path(__file__).parents[2] / "services"

WIRE = {"catalogue", "messaging", "faststream", "pydantic", "aiokafka", "aio_pika"}
STORAGE = {"sqlalchemy", "asyncpg"}
HTTP = {"fastapi", "starlette", "httpx"}
WIRE_OR_STORAGE = {"messaging", "faststream", "pydantic", "sqlalchemy", "aiokafka", "aio_pika"}
BROKER_OR_SQL = {"faststream", "sqlalchemy", "aiokafka", "aio_pika"}

# Per service: what its domain may not import.
DOMAIN = [
    (ORDER, WIRE | STORAGE | HTTP),
    (POINT, WIRE_OR_STORAGE),
    (NOTIFICATION, WIRE_OR_STORAGE | {"catalogue"}),
]
# Per service: its use-case modules, and what they may not import.
USE_CASES = [
    (ORDER, "handlers.py", {"faststream", "aiokafka", "aio_pika"} | STORAGE | HTTP),
    (ORDER, "messages.py", {"faststream", "aiokafka", "aio_pika"} | STORAGE | HTTP),
    (POINT, "handlers.py", BROKER_OR_SQL),
    (POINT, "messages.py", BROKER_OR_SQL),
    (NOTIFICATION, "handlers.py", BROKER_OR_SQL),
]


@pytest.mark.parametrize(
    ("path", "forbidden"),
    [
        (path, forbidden)
        for source, forbidden in DOMAIN
        for path in python_modules(source, "domain")
    ],
    ids=lambda value: f"{value.parents[1].name}/{value.name}" if isinstance(value, Path) else "",
)
def test_the_domain_knows_no_wire_and_no_storage(path: Path, forbidden: set[str]) -> None:
    assert imported(path) & forbidden == set()


@pytest.mark.parametrize(
    ("source", "name", "forbidden"),
    USE_CASES,
    ids=[f"{source.name}/{name}" for source, name, _ in USE_CASES],
)
def test_the_use_cases_know_no_broker_and_no_sql(
    source: Path, name: str, forbidden: set[str]
) -> None:
    path = source / "service_layer" / name
    assert imported(path) & forbidden == set()


# Every package's source below services/.
PACKAGES = [
    path
    for path in sorted(SERVICES.glob("*/src/*"))
    if path.is_dir() and (path / "__init__.py").exists()
]


@pytest.mark.parametrize("source", PACKAGES, ids=lambda path: path.name)
def test_no_function_is_longer_than_60_lines(source: Path) -> None:
    assert longer_functions(source, 60) == []


def test_every_service_package_is_checked_for_long_functions() -> None:
    names = {path.name for path in PACKAGES}
    assert {"order_service", "point_service", "notification_service"} <= names
    assert {"messaging", "catalogue", "outbox_relay"} <= names


ORDER_UNIT_OF_WORK = {
    "orders",
    "idempotency_keys",
    "__aenter__",
    "__aexit__",
    "commit",
    "announce",
}
ORDERS = {"add", "get", "list_by_customer", "list_recent", "count_by_customer", "save_status"}
KEYS = {"claim", "remember"}
POINT_UNIT_OF_WORK = {"points", "__aenter__", "__aexit__", "first_delivery", "commit", "announce"}
POINTS = {"lock_account", "save", "entry_for_order", "balance", "entries_of_orders"}
NOTIFICATION_UNIT_OF_WORK = {
    "deliveries",
    "__aenter__",
    "__aexit__",
    "first_delivery",
    "commit",
    "announce",
}
DELIVERIES = {"add_if_new", "of_orders"}

# Per Protocol: its SQL (or SMTP) implementation and its fake.
IMPLEMENTATIONS = {
    "order-uow": (
        OrdersUnitOfWork,
        OrderSqlUnitOfWork,
        order_fakes.FakeUnitOfWork,
        ORDER_UNIT_OF_WORK,
    ),
    "order-orders": (OrderRepository, SqlOrderRepository, order_fakes.FakeOrderRepository, ORDERS),
    "order-keys": (
        IdempotencyKeyRepository,
        SqlIdempotencyKeyRepository,
        order_fakes.FakeIdempotencyKeyRepository,
        KEYS,
    ),
    "point-uow": (
        PointsUnitOfWork,
        PointSqlUnitOfWork,
        point_fakes.FakeUnitOfWork,
        POINT_UNIT_OF_WORK,
    ),
    "point-repository": (
        PointsRepository,
        SqlPointsRepository,
        point_fakes.FakePointsRepository,
        POINTS,
    ),
    "notification-uow": (
        NotificationUnitOfWork,
        NotificationSqlUnitOfWork,
        notification_fakes.FakeUnitOfWork,
        NOTIFICATION_UNIT_OF_WORK,
    ),
    "notification-repository": (
        DeliveriesRepository,
        SqlDeliveriesRepository,
        notification_fakes.FakeDeliveriesRepository,
        DELIVERIES,
    ),
    "notification-mailer": (Mailer, SmtpMailer, notification_fakes.FakeMailer, {"send"}),
}


@pytest.mark.parametrize(
    ("protocol", "implementation", "members"),
    [
        pytest.param(protocol, implementation, members, id=f"{name}-{kind}")
        for name, (protocol, real, fake, members) in IMPLEMENTATIONS.items()
        for kind, implementation in (("real", real), ("fake", fake))
    ],
)
def test_both_implementations_have_the_protocols_members(
    protocol: type, implementation: type, members: set[str]
) -> None:
    assert set(signatures(protocol, implementation)) == members
    assert unlike(protocol, implementation) == {}


def test_orders_implementations_type_check_as_the_protocols() -> None:
    """mypy checks these assignments; at run time, they open without a database."""
    units: list[OrdersUnitOfWork] = [
        OrderSqlUnitOfWork(async_sessionmaker(), order_builders.FLOW),
        order_fakes.FakeUnitOfWork(order_fakes.FakeDatabase(), order_builders.FLOW),
    ]
    orders: list[OrderRepository] = [
        SqlOrderRepository(AsyncSession()),
        order_fakes.FakeOrderRepository(order_fakes.FakeDatabase().committed),
    ]
    keys: list[IdempotencyKeyRepository] = [
        SqlIdempotencyKeyRepository(AsyncSession()),
        order_fakes.FakeIdempotencyKeyRepository(order_fakes.FakeDatabase().committed),
    ]
    assert len(units) == len(orders) == len(keys) == 2


def test_points_implementations_type_check_as_the_protocols() -> None:
    """mypy checks these assignments; at run time, they open without a database."""
    units: list[PointsUnitOfWork] = [
        PointSqlUnitOfWork(async_sessionmaker(), point_builders.FLOW),
        point_fakes.FakeUnitOfWork(point_fakes.FakeDatabase(), point_builders.FLOW),
    ]
    repositories: list[PointsRepository] = [
        SqlPointsRepository(AsyncSession()),
        point_fakes.FakePointsRepository(point_fakes.FakeDatabase().committed),
    ]
    assert len(units) == len(repositories) == 2


def test_notifications_implementations_type_check_as_the_protocols() -> None:
    """mypy checks these assignments; at run time, they are made without a
    database or a mail server."""
    db = notification_fakes.FakeDatabase()
    units: list[NotificationUnitOfWork] = [
        NotificationSqlUnitOfWork(async_sessionmaker()),
        db.unit_of_work(),
    ]
    repositories: list[DeliveriesRepository] = [
        SqlDeliveriesRepository(AsyncSession()),
        notification_fakes.FakeDeliveriesRepository(db),
    ]
    smtp = SmtpMailer("127.0.0.1", 25, 1, "shop@example.com", 1)
    smtp.close()
    mailers: list[Mailer] = [smtp, notification_fakes.FakeMailer()]
    assert len(units) == len(repositories) == len(mailers) == 2


def _dependencies(annotation: object) -> list[Any]:
    """The functions an Annotated alias's Depends markers name (FastAPI's and
    FastStream's markers both keep them as `.dependency`), and theirs."""
    found = []
    for marker in getattr(annotation, "__metadata__", ()):
        call = getattr(marker, "dependency", None)
        if callable(call):
            found.append(call)
            hints = get_type_hints(call, include_extras=True)
            for parameter in inspect.signature(call).parameters:
                found += _dependencies(hints.get(parameter))
    return found


@pytest.mark.parametrize(
    "module",
    [order_dependencies, point_dependencies, notification_dependencies, messaging_consumer],
    ids=lambda module: module.__name__,
)
def test_every_dependency_of_a_door_is_a_coroutine_function(module: ModuleType) -> None:
    """FastStream's and FastAPI's dependency injection run a plain function in
    a worker thread for every message or request (a thread hand-off each,
    bench/README.md, issue 14): the doors' dependencies are coroutine functions."""
    calls = [call for alias in vars(module).values() for call in _dependencies(alias)]
    assert calls, f"{module.__name__} declares no dependency"
    assert [c.__qualname__ for c in calls if not inspect.iscoroutinefunction(c)] == []


def _context_fields(function: Any) -> list[tuple[str, object]]:
    """(parameter, field) for each FastStream context field a function takes,
    in its annotation or as its default."""
    hints = get_type_hints(function, include_extras=True)
    found = []
    for name, parameter in inspect.signature(function).parameters.items():
        markers = [*getattr(hints.get(name), "__metadata__", ()), parameter.default]
        found += [(name, m) for m in markers if isinstance(m, type(Context()))]
    return found


def _doors(module: ModuleType) -> list[Any]:
    """A consumers module's handlers (FastStream keeps the function it wraps
    as `_original_call`) and the functions they call with their context."""
    handlers = [getattr(v, "_original_call", v) for v in vars(module).values()]
    doors = [
        f for f in handlers if inspect.iscoroutinefunction(f) and f.__module__ == module.__name__
    ]
    return doors + [
        d
        for f in doors
        for p in get_type_hints(f, include_extras=True).values()
        for d in _dependencies(p)
    ]


@pytest.mark.parametrize(
    "module", [point_consumers, notification_consumers], ids=lambda module: module.__name__
)
def test_the_doors_take_their_context_without_a_thread(module: ModuleType) -> None:
    """FastStream's `Context` is resolved in a worker thread per parameter and
    message (fast_depends runs its plain `use` there): the doors and their
    dependencies take theirs through messaging.context.InContext."""
    fields = [(f.__qualname__, p, m) for f in set(_doors(module)) for p, m in _context_fields(f)]
    assert len({f for f, _, _ in fields}) >= 3, f"{module.__name__}: {fields}"
    assert [(f, p) for f, p, m in fields if not isinstance(m, InContext)] == []
