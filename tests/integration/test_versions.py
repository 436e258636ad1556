"""The Helm chart's default infrastructure images are the versions the local
stack runs, so that what `make test` proves here is what the chart installs
elsewhere (the kind path builds its images from the same sources)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import yaml

from stackctl.components import LocalStack
from tests.support.rabbit import admin_amqp_url

VALUES = Path(__file__).resolve().parents[2] / "deploy/helm/reference-system/values.yaml"


def chart_tag(component: str) -> str:
    values: dict[str, Any] = yaml.safe_load(VALUES.read_text())
    return str(values[component]["image"]["tag"])


async def test_rabbitmq_runs_the_version_the_chart_installs(local_stack: LocalStack) -> None:
    connection = await aio_pika.connect(admin_amqp_url(local_stack), timeout=10)
    async with connection:
        assert connection.transport is not None
        properties = connection.transport.connection.server_properties
    running = properties["version"]
    running = running.decode() if isinstance(running, bytes) else str(running)
    assert chart_tag("rabbitmq") == f"{running}-management"


async def test_postgresql_runs_the_major_version_the_chart_installs(
    local_stack: LocalStack,
) -> None:
    connection = await asyncpg.connect(local_stack.postgres_dsn(), timeout=10)
    try:
        major = (await connection.fetchval("SHOW server_version")).split(".")[0]
    finally:
        await connection.close()
    assert chart_tag("postgresql").split(".")[0] == major
