"""The stack controller's own behaviour: clear failures, bounded waits.

These run a real supervisord in a temporary state directory, not the stack.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackctl import probes
from stackctl.components import Component, LocalStack
from stackctl.control import StackError, up
from stackctl.credentials import Credentials
from stackctl.settings import StackSettings
from stackctl.supervisor import Supervisor, render_config


@pytest.fixture
def settings(tmp_path: Path) -> StackSettings:
    return StackSettings(state_dir=tmp_path / "state", ready_timeout_s=20)


@pytest.fixture
def supervisor(settings: StackSettings) -> Iterator[Supervisor]:
    sup = Supervisor(settings)
    yield sup
    if sup.is_running():
        sup.shutdown(30)


def test_a_port_in_use_is_named_with_its_component_and_setting(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = os.environ | {
            "STACK_STATE_DIR": str(tmp_path / "state"),
            "STACK_POSTGRES_PORT": str(port),
        }
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "stackctl.cli", "up"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"port {port} (postgres postgres) is already in use" in result.stderr
    assert "STACK_POSTGRES_PORT" in result.stderr
    assert time.monotonic() - started < 30
    assert not (tmp_path / "state" / "supervisord.pid").exists(), "nothing was started"


async def test_a_component_that_cannot_start_fails_up_with_its_last_log_lines(
    settings: StackSettings, supervisor: Supervisor
) -> None:
    async def never_ready() -> None:
        raise probes.NotReadyError("not listening")

    broken = Component(
        name="broken",
        command=["sh", "-c", "echo 'broken-marker: cannot open data dir'; exit 3"],
        ports={},
        probe=never_ready,
    )
    stack = LocalStack(settings, Credentials.load_or_create(settings.state_dir / "c.json"))
    started = time.monotonic()
    with pytest.raises(StackError) as failure:
        await up(stack, supervisor, [broken])
    assert time.monotonic() - started < settings.ready_timeout_s
    message = str(failure.value)
    assert "broken exited repeatedly (FATAL)" in message
    assert "broken-marker: cannot open data dir" in message


async def test_a_component_that_never_answers_fails_up_after_the_timeout(
    tmp_path: Path,
) -> None:
    settings = StackSettings(state_dir=tmp_path / "state", ready_timeout_s=3)
    supervisor = Supervisor(settings)

    async def never_ready() -> None:
        raise probes.NotReadyError("tcp 127.0.0.1:1: refused")

    silent = Component(name="silent", command=["sleep", "60"], ports={}, probe=never_ready)
    stack = LocalStack(settings, Credentials.load_or_create(settings.state_dir / "c.json"))
    try:
        with pytest.raises(StackError, match=r"silent not ready after 3s .*refused"):
            await up(stack, supervisor, [silent])
    finally:
        supervisor.shutdown(30)


def test_supervisor_config_escapes_percent_and_quotes(settings: StackSettings) -> None:
    component = Component(
        name="x",
        command=["echo", "100%"],
        ports={},
        probe=lambda: probes.tcp_open("127.0.0.1", 1),
        environment={"PASSWORD": 'a%b"c'},
    )
    text = render_config(settings, [component])
    assert "command=echo 100%%" in text
    assert 'environment=PASSWORD="a%%b\\"c"' in text
