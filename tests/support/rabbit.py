"""RabbitMQ through its management HTTP API: an independent client to inject
messages and inspect queues, not the library the services use."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx

from stackctl.components import LocalStack


class RabbitAdmin:
    def __init__(self, management_url: str, user: str, password: str) -> None:
        self.http = httpx.AsyncClient(
            base_url=f"{management_url}/api", auth=(user, password), timeout=10
        )

    @classmethod
    def local(cls, stack: LocalStack) -> RabbitAdmin:
        admin = stack.creds.rabbitmq_admin
        return cls(stack.rabbitmq_management_url, admin.user, admin.password)

    async def close(self) -> None:
        await self.http.aclose()

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes | str,
        *,
        headers: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
    ) -> None:
        payload = body.encode() if isinstance(body, str) else body
        response = await self.http.post(
            f"/exchanges/%2F/{exchange}/publish",
            json={
                "routing_key": routing_key,
                "payload": base64.b64encode(payload).decode(),
                "payload_encoding": "base64",
                "properties": {"delivery_mode": 2, "headers": headers or {}, **(properties or {})},
            },
        )
        response.raise_for_status()
        assert response.json()["routed"], f"{exchange}/{routing_key} did not route the message"

    async def depth(self, queue: str) -> int:
        response = await self.http.get(f"/queues/%2F/{queue}")
        response.raise_for_status()
        data = response.json()
        return int(data.get("messages", 0))

    async def peek(self, queue: str, count: int = 100) -> list[dict[str, Any]]:
        """Messages at the head of a queue, left in place."""
        response = await self.http.post(
            f"/queues/%2F/{queue}/get",
            json={"count": count, "ackmode": "ack_requeue_true", "encoding": "auto"},
        )
        response.raise_for_status()
        return list(response.json())

    async def wait_for_depth(self, queue: str, at_least: int, timeout_s: float = 30) -> int:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            # The management API refreshes queue statistics every few seconds.
            depth = len(await self.peek(queue, 1000))
            if depth >= at_least or asyncio.get_running_loop().time() > deadline:
                return depth
            await asyncio.sleep(0.5)

    async def consumers(self, queue: str) -> list[dict[str, Any]]:
        response = await self.http.get(f"/queues/%2F/{queue}")
        response.raise_for_status()
        return list(response.json().get("consumer_details", []))

    async def purge(self, queue: str) -> None:
        (await self.http.delete(f"/queues/%2F/{queue}/contents")).raise_for_status()


def admin_amqp_url(stack: LocalStack) -> str:
    """AMQP as the administrator: tests declare their own queues, which no
    service account may (catalogue.accounts)."""
    admin = stack.creds.rabbitmq_admin
    return f"amqp://{admin.user}:{admin.password}@{stack.s.host}:{stack.s.rabbitmq_port}/"


def cloudevent_headers(
    message_type: str, *, message_id: str, source: str = "tests", prefix: str = "ce-"
) -> dict[str, str]:
    return {
        f"{prefix}specversion": "1.0",
        f"{prefix}id": message_id,
        f"{prefix}type": message_type,
        f"{prefix}source": source,
        f"{prefix}schemaversion": "1",
        f"{prefix}correlationid": f"test-{message_id}",
    }


def as_json(data: dict[str, Any]) -> str:
    return json.dumps(data)
