"""Waiting for a system that gets there in its own time, and a port to listen
on: what the integration, end-to-end, fuzz and observability suites and the
benchmarks all need."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool],
    timeout_s: float = 60,
    interval_s: float = 0.5,
) -> T:
    """Probe until `until` holds or the time is up; the last value either way
    (the caller's assertion says what was expected of it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if until(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(interval_s)


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout_s: float, interval_s: float = 0.25
) -> bool:
    """Whether `check` came true within the time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(interval_s)
    return False


def free_port() -> int:
    """A loopback port nothing listens on now (free until someone takes it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def responds(http: httpx.AsyncClient, url: str) -> bool:
    """Whether `url` answers with a success status now (a readiness probe)."""
    try:
        return (await http.get(url)).is_success
    except httpx.HTTPError:
        return False
