"""Readiness probes: each returns when its component answers, or raises NotReadyError."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable
from typing import cast

import httpx
import psycopg
import redis.asyncio as redis
from aiokafka.admin import AIOKafkaAdminClient


class NotReadyError(Exception):
    """The component does not answer yet; the message says what was tried."""


async def tcp_open(host: str, port: int, timeout: float = 2.0) -> None:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as exc:
        raise NotReadyError(f"tcp {host}:{port}: {exc or type(exc).__name__}") from exc
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def http_ok(url: str, auth: tuple[str, str] | None = None, timeout: float = 3.0) -> None:
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(url, auth=auth)
    except httpx.HTTPError as exc:
        raise NotReadyError(f"GET {url}: {exc!r}") from exc
    if response.status_code != 200:
        raise NotReadyError(f"GET {url}: HTTP {response.status_code} {response.text[:200]}")


async def postgres_accepts(dsn: str, timeout: float = 3.0) -> None:
    try:
        conn = await psycopg.AsyncConnection.connect(dsn, connect_timeout=int(timeout))
        async with conn:
            await conn.execute("select 1")
    except psycopg.Error as exc:
        raise NotReadyError(f"postgres: {str(exc).strip()}") from exc


async def kafka_cluster_answers(bootstrap: str, timeout: float = 5.0) -> None:
    host, _, port = bootstrap.rpartition(":")
    await tcp_open(host, int(port))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout)
    except Exception as exc:
        raise NotReadyError(f"kafka {bootstrap}: {exc!r}") from exc
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    if not cluster.get("brokers"):
        raise NotReadyError(f"kafka {bootstrap}: no broker registered yet")


async def redis_pong(host: str, port: int, password: str, timeout: float = 2.0) -> None:
    client = redis.Redis(
        host=host,
        port=port,
        password=password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )
    try:
        # redis-py types ping() as "Awaitable[bool] | bool" for its sync and
        # async clients alike.
        await cast("Awaitable[bool]", client.ping())
    except redis.RedisError as exc:
        raise NotReadyError(f"redis {host}:{port}: {exc!r}") from exc
    finally:
        await client.aclose()


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
