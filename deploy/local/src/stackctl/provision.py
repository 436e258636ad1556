"""Idempotent provisioning of the local stack: a database and a login per
service in PostgreSQL, and a user per service in RabbitMQ."""

from __future__ import annotations

import httpx
import psycopg
from psycopg import sql

from stackctl.components import LocalStack
from stackctl.credentials import SERVICES


async def provision_postgres(stack: LocalStack) -> None:
    async with await psycopg.AsyncConnection.connect(stack.postgres_dsn(), autocommit=True) as conn:
        for service in SERVICES:
            account = stack.creds.postgres[service]
            role = sql.Identifier(account.user)
            exists = await (
                await conn.execute("select 1 from pg_roles where rolname = %s", (account.user,))
            ).fetchone()
            verb = sql.SQL("alter") if exists else sql.SQL("create")
            await conn.execute(
                sql.SQL("{} role {} login password {}").format(
                    verb, role, sql.Literal(account.password)
                )
            )
            has_db = await (
                await conn.execute("select 1 from pg_database where datname = %s", (service,))
            ).fetchone()
            if not has_db:
                await conn.execute(
                    sql.SQL("create database {} owner {}").format(sql.Identifier(service), role)
                )
            # Each service reaches only its own database.
            await conn.execute(
                sql.SQL("revoke connect on database {} from public").format(sql.Identifier(service))
            )


async def provision_rabbitmq(stack: LocalStack) -> None:
    admin = (stack.creds.rabbitmq_admin.user, stack.creds.rabbitmq_admin.password)
    async with httpx.AsyncClient(
        base_url=stack.rabbitmq_management_url, auth=admin, timeout=10
    ) as http:
        for service in SERVICES:
            account = stack.creds.rabbitmq[service]
            response = await http.put(
                f"/api/users/{account.user}", json={"password": account.password, "tags": ""}
            )
            response.raise_for_status()
            response = await http.put(
                f"/api/permissions/%2F/{account.user}",
                json={"configure": ".*", "write": ".*", "read": ".*"},
            )
            response.raise_for_status()
