"""Fixtures for tests against the running local stack (`make up`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from stackctl.components import LocalStack
from stackctl.control import build
from stackctl.supervisor import Supervisor
from tests.support.rabbit import RabbitAdmin


@pytest.fixture(scope="session")
def local_stack() -> LocalStack:
    local, supervisor = build()
    if not supervisor.is_running():
        pytest.fail("the local stack is not running: start it with `make up`")
    return local


@pytest.fixture(scope="session")
def supervisor(local_stack: LocalStack) -> Supervisor:
    return Supervisor(local_stack.s)


@pytest.fixture
async def api(local_stack: LocalStack) -> AsyncIterator[httpx.AsyncClient]:
    """order-service's HTTP API."""
    base = f"http://{local_stack.s.host}:{local_stack.s.order_service_port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        yield client


@pytest.fixture
async def rabbit(local_stack: LocalStack) -> AsyncIterator[RabbitAdmin]:
    """The local RabbitMQ as its administrator (management API and AMQP)."""
    admin = RabbitAdmin.local(local_stack)
    yield admin
    await admin.close()
