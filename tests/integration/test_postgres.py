"""Each service has its own PostgreSQL database and login, and only its own."""

from __future__ import annotations

import psycopg
import pytest

from catalogue.services import SERVICES
from stackctl.components import LocalStack


@pytest.mark.parametrize("service", SERVICES)
async def test_each_service_reaches_its_database_with_its_own_credentials(
    local_stack: LocalStack, service: str
) -> None:
    dsn = local_stack.postgres_dsn(database=service, user=service)
    async with await psycopg.AsyncConnection.connect(dsn, connect_timeout=5) as conn:
        row = await (await conn.execute("select current_user, current_database()")).fetchone()
        assert row == (service, service)
        # The owner can create its tables.
        await conn.execute("create temporary table probe (id int)")


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_cannot_open_another_services_database(
    local_stack: LocalStack, service: str
) -> None:
    other = next(s for s in SERVICES if s != service)
    dsn = local_stack.postgres_dsn(database=other, user=service)
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        await psycopg.AsyncConnection.connect(dsn, connect_timeout=5)


async def test_a_wrong_password_is_refused(local_stack: LocalStack) -> None:
    dsn = local_stack.postgres_dsn(database="order", user="order").replace(
        local_stack.creds.postgres["order"].password, "wrong"
    )
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        await psycopg.AsyncConnection.connect(dsn, connect_timeout=5)
