"""Network faults with a real fault proxy: Toxiproxy (built from the Go module
proxy into .tools/bin by `make tools`), driven through its HTTP API.

`rerouted(target, component, "rabbitmq")` runs a component with its broker
connection going through a proxy, so that latency can be added and
connections cut between that one service and the broker while everything
else talks to the broker directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from stackctl.apps import Apps
from tests.e2e.targets import LocalTarget
from tests.support.waiting import eventually, free_port, responds

TOXIPROXY = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "toxiproxy-server"


class Proxy:
    def __init__(self, api: httpx.AsyncClient, name: str, listen_port: int) -> None:
        self.api = api
        self.name = name
        self.listen_port = listen_port

    async def add_latency(self, ms: int, jitter_ms: int = 0) -> None:
        for stream in ("upstream", "downstream"):
            response = await self.api.post(
                f"/proxies/{self.name}/toxics",
                json={
                    "name": f"latency-{stream}",
                    "type": "latency",
                    "stream": stream,
                    "attributes": {"latency": ms, "jitter": jitter_ms},
                },
            )
            response.raise_for_status()

    async def clear(self) -> None:
        toxics = (await self.api.get(f"/proxies/{self.name}/toxics")).raise_for_status().json()
        for toxic in toxics:
            deleted = await self.api.delete(f"/proxies/{self.name}/toxics/{toxic['name']}")
            deleted.raise_for_status()

    async def cut(self) -> None:
        """Close every connection through the proxy and refuse new ones."""
        await self._enable(False)

    async def restore(self) -> None:
        await self._enable(True)

    async def _enable(self, enabled: bool) -> None:
        response = await self.api.post(f"/proxies/{self.name}", json={"enabled": enabled})
        response.raise_for_status()


@contextlib.asynccontextmanager
async def toxiproxy() -> AsyncIterator[httpx.AsyncClient]:
    if not TOXIPROXY.exists():
        raise FileNotFoundError(f"{TOXIPROXY} missing: run `make tools`")
    port = free_port()
    server = subprocess.Popen(
        [str(TOXIPROXY), "-host", "127.0.0.1", "-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                (await api.get("/version")).raise_for_status()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        yield api
    finally:
        await api.aclose()
        server.terminate()
        server.wait(10)


UPSTREAM_PORT_VARIABLE = {"rabbitmq": "RABBITMQ_PORT", "postgres": "DATABASE_PORT"}


@contextlib.asynccontextmanager
async def rerouted(target: LocalTarget, component: str, upstream: str) -> AsyncIterator[Proxy]:
    """Replace the supervised `component` by the same program whose connection
    to `upstream` goes through a proxy; put the supervised one back after."""
    stack = target.stack
    upstream_port = {"rabbitmq": stack.s.rabbitmq_port, "postgres": stack.s.postgres_port}[upstream]
    spec = next(c for c in Apps(stack).components() if c.name == component)
    async with toxiproxy() as api:
        listen = free_port()
        response = await api.post(
            "/proxies",
            json={
                "name": f"{component}-{upstream}",
                "listen": f"127.0.0.1:{listen}",
                "upstream": f"127.0.0.1:{upstream_port}",
                "enabled": True,
            },
        )
        response.raise_for_status()
        proxy = Proxy(api, f"{component}-{upstream}", listen)
        env = {**os.environ, **spec.environment, UPSTREAM_PORT_VARIABLE[upstream]: str(listen)}
        await target.stop(component)
        with tempfile.NamedTemporaryFile("wb", prefix=f"{component}-proxied-") as log:
            process = subprocess.Popen(
                list(spec.command), env=env, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                await _ready(f"http://{stack.s.host}:{spec.ports['http']}/health/ready")
                yield proxy
            finally:
                process.terminate()
                process.wait(30)
                await target.start(component)


async def _ready(url: str, timeout_s: float = 30) -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        if not await eventually(lambda: responds(http, url), bool, timeout_s, 0.2):
            raise TimeoutError(f"{url} not ready after {timeout_s}s")
