"""The mail catcher (Mailpit) through its HTTP API: what was delivered, and its
chaos switch to make SMTP fail on demand."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from stackctl.components import LocalStack


class MailCatcher:
    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=f"{base_url}/api/v1", timeout=10)

    @classmethod
    def local(cls, stack: LocalStack) -> MailCatcher:
        return cls(f"http://{stack.s.host}:{stack.s.mailpit_http_port}")

    async def close(self) -> None:
        await self.http.aclose()

    async def to(self, address: str) -> list[dict[str, Any]]:
        """Messages to this address, oldest first."""
        response = await self.http.get(
            "/search", params={"query": f'to:"{address}"', "limit": 1000}
        )
        response.raise_for_status()
        return list(reversed(response.json()["messages"]))

    async def search_all(self, query: str, page: int = 1000) -> list[dict[str, Any]]:
        """Every message matching a Mailpit search query, page by page."""
        found: list[dict[str, Any]] = []
        while True:
            response = await self.http.get(
                "/search", params={"query": query, "start": len(found), "limit": page}
            )
            response.raise_for_status()
            messages = response.json()["messages"]
            found += messages
            if len(messages) < page:
                return found

    async def wait_for(
        self, address: str, count: int, timeout_s: float = 60
    ) -> list[dict[str, Any]]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            found = await self.to(address)
            if len(found) >= count or asyncio.get_running_loop().time() > deadline:
                return found
            await asyncio.sleep(0.5)

    async def headers(self, message_id: str) -> dict[str, list[str]]:
        response = await self.http.get(f"/message/{message_id}/headers")
        response.raise_for_status()
        return dict(response.json())

    async def fail_recipients(self, error_code: int | None) -> None:
        """Make every RCPT TO fail with `error_code` (None: stop failing)."""
        trigger = {"ErrorCode": error_code or 451, "Probability": 100 if error_code else 0}
        response = await self.http.put("/chaos", json={"Recipient": trigger})
        response.raise_for_status()
