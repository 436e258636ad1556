"""The shape every service keeps (so that a new one is a copy): a domain that
knows no wire, a use case that knows no broker and no SQL, short functions,
and in-memory twins of the unit of work and the mailer."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import notification_service
from notification_service.adapters.lock import AdvisoryMessageLock, MessageLock
from notification_service.adapters.mailer import Mailer, SmtpMailer
from notification_service.adapters.repository import DeliveriesRepository, SqlDeliveriesRepository
from notification_service.service_layer.unit_of_work import NotificationUnitOfWork, UnitOfWork
from tests.support.shape import differences, imported, longer_functions
from tests.unit.notification.fakes import (
    FakeDatabase,
    FakeDeliveriesRepository,
    FakeMailer,
    FakeMessageLock,
    FakeUnitOfWork,
)

SOURCE = Path(notification_service.__file__).parent
WIRE_OR_STORAGE = {"messaging", "faststream", "pydantic", "sqlalchemy", "aiokafka", "aio_pika"}


@pytest.mark.parametrize("path", sorted((SOURCE / "domain").rglob("*.py")), ids=lambda p: p.name)
def test_the_domain_knows_no_wire_and_no_storage(path: Path) -> None:
    assert imported(path) & (WIRE_OR_STORAGE | {"catalogue"}) == set()


def test_the_use_case_knows_no_broker_and_no_sql() -> None:
    path = SOURCE / "service_layer" / "handlers.py"
    assert imported(path) & {"faststream", "sqlalchemy", "aiokafka", "aio_pika"} == set()


def test_no_function_is_longer_than_60_lines() -> None:
    assert longer_functions(SOURCE, 60) == []


UNIT_OF_WORK = {
    "deliveries",
    "lock",
    "__aenter__",
    "__aexit__",
    "in_inbox",
    "first_delivery",
    "commit",
}


@pytest.mark.parametrize(
    ("protocol", "implementation", "members"),
    [
        (NotificationUnitOfWork, UnitOfWork, UNIT_OF_WORK),
        (NotificationUnitOfWork, FakeUnitOfWork, UNIT_OF_WORK),
        (DeliveriesRepository, SqlDeliveriesRepository, {"delivered", "add"}),
        (DeliveriesRepository, FakeDeliveriesRepository, {"delivered", "add"}),
        (MessageLock, AdvisoryMessageLock, {"hold"}),
        (MessageLock, FakeMessageLock, {"hold"}),
        (Mailer, SmtpMailer, {"send"}),
        (Mailer, FakeMailer, {"send"}),
    ],
    ids=[
        "sql-uow",
        "fake-uow",
        "sql-repository",
        "fake-repository",
        "advisory-lock",
        "fake-lock",
        "smtp-mailer",
        "fake-mailer",
    ],
)
def test_both_implementations_have_the_protocols_members(
    protocol: type, implementation: type, members: set[str]
) -> None:
    assert differences(protocol, implementation) == (members, {})


def test_both_implementations_type_check_as_the_protocols() -> None:
    """mypy checks these assignments; at run time, they are made without a
    database or a mail server."""
    db = FakeDatabase()
    units: list[NotificationUnitOfWork] = [UnitOfWork(async_sessionmaker()), db.unit_of_work()]
    repositories: list[DeliveriesRepository] = [
        SqlDeliveriesRepository(AsyncSession()),
        FakeDeliveriesRepository(db),
    ]
    locks: list[MessageLock] = [AdvisoryMessageLock(AsyncSession()), FakeMessageLock(db)]
    smtp = SmtpMailer("127.0.0.1", 25, 1, "shop@example.com", 1)
    smtp.close()
    mailers: list[Mailer] = [smtp, FakeMailer()]
    assert len(units) == len(repositories) == len(locks) == len(mailers) == 2
