"""The stack's processes in tests: one stopped for a while, and extra
service processes beside the supervised ones (a second replica)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

from stackctl.apps import Apps
from stackctl.components import LocalStack
from stackctl.control import start
from stackctl.supervisor import Supervisor
from tests.support.waiting import free_port


def spawn_point_service(
    stack: LocalStack, log: IO[bytes], name: str = "point-service-replica"
) -> tuple[subprocess.Popen[bytes], int]:
    """Another point-service replica in the same consumer group, on a free HTTP port."""
    port = free_port()
    env = {
        **os.environ,
        **Apps(stack).point_service_env(),
        "HTTP_PORT": str(port),
        "OTEL_SERVICE_NAME": name,
    }
    command = [str(Path(sys.executable).with_name("point-service")), "serve"]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    return process, port


@asynccontextmanager
async def stopped(stack: LocalStack, supervisor: Supervisor, name: str) -> AsyncIterator[None]:
    """The component stopped for the block, and started again, ready, after it
    (whatever happened in the block)."""
    supervisor.stop(name)
    try:
        yield
    finally:
        await start(stack, supervisor, name)
