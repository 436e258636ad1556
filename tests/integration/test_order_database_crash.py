"""order-service while its PostgreSQL crashes and recovers: SIGKILL to the
server (supervisord starts it again; it then runs crash recovery and answers
"the database system is not yet accepting connections" for a while). Every
order placed meanwhile is either created (201) or refused with 503 and
Retry-After — never a 500 — and orders are created again once it is back."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import httpx

from stackctl.components import LocalStack
from stackctl.supervisor import Supervisor
from tests.support.orders import order_request


async def test_orders_during_a_database_crash_get_503_never_500(
    local_stack: LocalStack, supervisor: Supervisor
) -> None:
    api = f"http://{local_stack.s.host}:{local_stack.s.order_service_port}"
    statuses: Counter[int] = Counter()
    async with httpx.AsyncClient(base_url=api, timeout=15) as client:

        async def place() -> int:
            customer = f"it-crash-{uuid.uuid4().hex[:10]}"
            response = await client.post("/orders", json=order_request(customer, "3.00", "s1"))
            if response.status_code == 503:
                assert response.headers["Retry-After"]
            return response.status_code

        assert await place() == 201
        await asyncio.to_thread(supervisor.signal, "postgres", "KILL")
        deadline = time.monotonic() + 90
        recovered = False
        while time.monotonic() < deadline:
            status = await place()
            statuses[status] += 1
            if status == 201 and statuses[503]:
                recovered = True
                break
            await asyncio.sleep(0.05)
    assert set(statuses) <= {201, 503}, f"statuses while the database recovered: {statuses}"
    assert statuses[503] > 0, "the crash was seen"
    assert recovered, f"orders were not created again within 90 s: {statuses}"
