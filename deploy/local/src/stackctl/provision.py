"""Idempotent provisioning of the local stack: a database and a login per
service in PostgreSQL, and a user per service in RabbitMQ with the same
least-privilege rights as in the cluster (catalogue.accounts does both)."""

from __future__ import annotations

from catalogue import accounts
from catalogue.services import SERVICES
from stackctl.components import LocalStack


async def provision_postgres(stack: LocalStack) -> None:
    await accounts.provision_postgres(
        stack.s.host,
        stack.s.postgres_port,
        stack.creds.postgres_admin.user,
        stack.creds.postgres_admin.password,
        {s: stack.creds.postgres[s].password for s in SERVICES},
    )


async def provision_rabbitmq(stack: LocalStack) -> None:
    await accounts.provision_rabbitmq(
        stack.rabbitmq_management_url,
        stack.creds.rabbitmq_admin.user,
        stack.creds.rabbitmq_admin.password,
        {s: stack.creds.rabbitmq[s].password for s in SERVICES},
    )
