"""Fixtures for tests against the running local stack (`make up`)."""

from __future__ import annotations

import pytest

from stackctl.components import LocalStack
from stackctl.control import build
from stackctl.supervisor import Supervisor


@pytest.fixture(scope="session")
def local_stack() -> LocalStack:
    local, supervisor = build()
    if not supervisor.is_running():
        pytest.fail("the local stack is not running: start it with `make up`")
    return local


@pytest.fixture(scope="session")
def supervisor(local_stack: LocalStack) -> Supervisor:
    return Supervisor(local_stack.s)
