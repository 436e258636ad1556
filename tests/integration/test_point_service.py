"""point-service against the real stack: idempotent consumption of `orders`,
offsets committed after the effect, replicas sharing partitions, replay,
dead letters, the GrantPoints command and the balance request/reply."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from catalogue.topology import (
    ORDERS,
    ORDERS_POINT_SERVICE_DLT,
    POINT_COMMANDS,
    POINT_COMMANDS_DEAD_LETTER,
    POINT_SERVICE_GROUP,
)
from stackctl.apps import Apps
from stackctl.components import LocalStack
from stackctl.supervisor import Supervisor
from tests.support import kafka
from tests.support.metrics import Samples, metric, scrape
from tests.support.orders import order_request
from tests.support.processes import spawn_point_service, stopped
from tests.support.rabbit import RabbitAdmin, cloudevent_headers
from tests.support.waiting import eventually


@pytest.fixture
async def points_db(local_stack: LocalStack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(local_stack.postgres_dsn(database="point", user="point"))
    yield conn
    await conn.close()


async def place(api: httpx.AsyncClient, customer: str, amount: str = "10.00") -> str:
    response = await api.post("/orders", json=order_request(customer, amount, "sku-1"))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def wait_for_rows(
    db: asyncpg.Connection, query: str, *args: Any, expected: int, timeout_s: float = 60
) -> int:
    async def count() -> int:
        return int(await db.fetchval(query, *args))

    return await eventually(count, lambda n: n >= expected, timeout_s, 0.2)


async def grants(db: asyncpg.Connection, customer: str) -> list[int]:
    rows = await db.fetch(
        "select points from point_ledger where customer_id = $1 and kind = 'grant' order by id",
        customer,
    )
    return [r["points"] for r in rows]


async def point_metrics(stack: LocalStack, port: int | None = None) -> Samples:
    return await scrape(f"http://{stack.s.host}:{port or stack.s.point_service_port}/metrics")


async def placed_record(stack: LocalStack, order_id: str) -> kafka.Record:
    records = await kafka.read(stack.kafka_bootstrap, ORDERS.topic, until=10**9, timeout_s=5)
    return next(r for r in records if r.key == order_id and r.headers["ce_type"] == "order.placed")


async def test_an_order_grants_points_once_and_cancel_revokes_exactly_them(
    api: httpx.AsyncClient, points_db: asyncpg.Connection
) -> None:
    customer = f"pts-{uuid.uuid4().hex[:8]}"
    order_id = await place(api, customer, "42.99")
    await wait_for_rows(
        points_db,
        "select count(*) from point_ledger where order_id = $1",
        uuid.UUID(order_id),
        expected=1,
    )
    assert await grants(points_db, customer) == [42]
    assert (await api.post(f"/orders/{order_id}/cancel")).status_code == 200
    await wait_for_rows(
        points_db,
        "select count(*) from point_ledger where order_id = $1 and kind = 'revoke'",
        uuid.UUID(order_id),
        expected=1,
    )
    assert (
        await points_db.fetchval(
            "select balance from point_balances where customer_id = $1", customer
        )
        == 0
    )
    summary = (await api.get(f"/customers/{customer}/summary")).json()
    assert summary["points"] == {"status": "available", "balance": 0, "reason": None}
    assert summary["orders"] == 1


async def test_the_same_order_placed_delivered_twice_grants_once(
    local_stack: LocalStack, api: httpx.AsyncClient, points_db: asyncpg.Connection
) -> None:
    customer = f"dup-{uuid.uuid4().hex[:8]}"
    order_id = await place(api, customer)
    await wait_for_rows(
        points_db,
        "select count(*) from point_ledger where order_id = $1",
        uuid.UUID(order_id),
        expected=1,
    )
    before = metric(await point_metrics(local_stack), "messaging_duplicates_skipped_total")
    original = await placed_record(local_stack, order_id)
    # The same record again, straight onto the topic with kcat (same message id).
    headers = [arg for k, v in original.headers.items() for arg in ("-H", f"{k}={v}")]
    subprocess.run(
        [
            "kcat",
            "-b",
            local_stack.kafka_bootstrap,
            "-P",
            "-t",
            ORDERS.topic,
            "-k",
            order_id,
            *headers,
        ],
        input=json.dumps(original.value).encode(),
        check=True,
        timeout=30,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = metric(await point_metrics(local_stack), "messaging_duplicates_skipped_total")
        if now > before:
            break
        await asyncio.sleep(0.3)
    assert now == before + 1
    assert await grants(points_db, customer) == [10]


async def test_reprocessing_after_commit_before_offset_commit_grants_nothing_twice(
    local_stack: LocalStack,
    supervisor: Supervisor,
    api: httpx.AsyncClient,
    points_db: asyncpg.Connection,
) -> None:
    """The state a crash between the database commit and the offset commit
    leaves behind: effects committed, offsets behind. Reproduced exactly by
    moving the group's committed offsets back while point-service is stopped."""
    customer = f"crash-{uuid.uuid4().hex[:8]}"
    ids = [await place(api, customer) for _ in range(20)]
    await wait_for_rows(
        points_db,
        "select count(*) from point_ledger where customer_id = $1",
        customer,
        expected=20,
    )
    async with stopped(local_stack, supervisor, "point-service"):
        rewound = await rewind_group(local_stack, POINT_SERVICE_GROUP, by=50)
    assert rewound >= 20
    # The fresh process counts from zero: every re-read record is either a
    # duplicate found in the inbox, or a poison message dead-lettered again.
    deadline = time.monotonic() + 60
    seen = 0.0
    while time.monotonic() < deadline:
        samples = await point_metrics(local_stack)
        skipped = metric(samples, "messaging_duplicates_skipped_total")
        seen = skipped + metric(samples, "messaging_dead_lettered_total")
        if seen >= rewound:
            break
        await asyncio.sleep(0.5)
    assert seen == rewound
    assert skipped >= 20
    assert await grants(points_db, customer) == [10] * 20
    assert (
        await points_db.fetchval(
            "select balance from point_balances where customer_id = $1", customer
        )
        == 200
    )
    assert len(ids) == 20


async def test_point_service_sigkilled_under_load_grants_every_order_exactly_once(
    local_stack: LocalStack,
    supervisor: Supervisor,
    api: httpx.AsyncClient,
    points_db: asyncpg.Connection,
) -> None:
    customer = f"kill-{uuid.uuid4().hex[:8]}"
    limit = asyncio.Semaphore(10)

    async def one() -> str:
        async with limit:
            return await place(api, customer)

    load = asyncio.gather(*(one() for _ in range(300)))
    await wait_for_rows(
        points_db,
        "select count(*) from point_ledger where customer_id = $1",
        customer,
        expected=50,
    )
    supervisor.signal("point-service", "KILL")  # supervisord restarts it, as Kubernetes would
    ids = await load
    assert (
        await wait_for_rows(
            points_db,
            "select count(*) from point_ledger where customer_id = $1",
            customer,
            expected=300,
            timeout_s=120,
        )
        == 300
    )
    rows = await points_db.fetch(
        "select order_id, count(*) as n from point_ledger where customer_id = $1 group by 1",
        customer,
    )
    assert {str(r["order_id"]) for r in rows} == set(ids)
    assert {r["n"] for r in rows} == {1}
    assert (
        await points_db.fetchval(
            "select balance from point_balances where customer_id = $1", customer
        )
        == 3000
    )


async def test_two_replicas_share_the_partitions_and_grant_each_order_once(
    local_stack: LocalStack, api: httpx.AsyncClient, points_db: asyncpg.Connection, tmp_path: Path
) -> None:
    log = (tmp_path / "replica.log").open("wb")
    replica, replica_port = spawn_point_service(local_stack, log)
    try:
        members = await wait_for_members(local_stack, POINT_SERVICE_GROUP, 2)
        assert len(members) == 2, "both replicas joined the group"
        assignments = [m for m in members if m]
        assert len(assignments) == 2, "each replica owns partitions"
        assert sum(len(a) for a in assignments) == 6
        customer = f"rep-{uuid.uuid4().hex[:8]}"
        limit = asyncio.Semaphore(10)

        async def one() -> str:
            async with limit:
                return await place(api, f"{customer}-{uuid.uuid4().hex[:4]}")

        ids = await asyncio.gather(*(one() for _ in range(200)))
        assert (
            await wait_for_rows(
                points_db,
                "select count(*) from point_ledger where order_id = any($1::uuid[])",
                [uuid.UUID(i) for i in ids],
                expected=200,
                timeout_s=120,
            )
            == 200
        )
        duplicates = await points_db.fetchval(
            "select count(*) from (select order_id from point_ledger"
            " where order_id = any($1::uuid[]) group by order_id having count(*) > 1) d",
            [uuid.UUID(i) for i in ids],
        )
        assert duplicates == 0
        replica_metrics = await point_metrics(local_stack, replica_port)
        assert metric(replica_metrics, "faststream_received_messages_total") > 0, (
            "the replica processed its share"
        )
    finally:
        replica.send_signal(signal.SIGTERM)
        replica.wait(30)
        log.close()


async def test_replay_into_a_new_group_reproduces_the_balances(
    local_stack: LocalStack, api: httpx.AsyncClient, points_db: asyncpg.Connection
) -> None:
    customer = f"replay-{uuid.uuid4().hex[:8]}"
    ids = [await place(api, customer, "7.50") for _ in range(5)]
    await api.post(f"/orders/{ids[0]}/cancel")
    await wait_for_rows(
        points_db,
        "select count(*) from point_ledger where customer_id = $1",
        customer,
        expected=6,
    )
    await wait_for_lag_zero(local_stack, POINT_SERVICE_GROUP)
    result = subprocess.run(
        [str(Path(sys.executable).with_name("point-service")), "rebuild-projection"],
        env={**os.environ, **Apps(local_stack).point_service_env()},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "differences=0" in result.stdout
    assert "replayed" in result.stdout


async def test_poison_on_the_topic_is_dead_lettered_and_the_consumer_keeps_going(
    local_stack: LocalStack, api: httpx.AsyncClient, points_db: asyncpg.Connection
) -> None:
    since = await kafka.end_offsets(local_stack.kafka_bootstrap, ORDERS_POINT_SERVICE_DLT.topic)
    bad_id = str(uuid.uuid4())
    producer = AIOKafkaProducer(bootstrap_servers=local_stack.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(ORDERS.topic, b"\x00not json", key=b"poison-1")
        await producer.send_and_wait(
            ORDERS.topic,
            b'{"order_id": "not-a-uuid"}',
            key=b"poison-2",
            headers=[
                (k, v.encode())
                for k, v in cloudevent_headers(
                    "order.placed", message_id=bad_id, prefix="ce_"
                ).items()
            ],
        )
    finally:
        await producer.stop()
    customer = f"after-poison-{uuid.uuid4().hex[:8]}"
    order_id = await place(api, customer)
    assert (
        await wait_for_rows(
            points_db,
            "select count(*) from point_ledger where order_id = $1",
            uuid.UUID(order_id),
            expected=1,
        )
        == 1
    )
    dead = await kafka.read(
        local_stack.kafka_bootstrap, ORDERS_POINT_SERVICE_DLT.topic, until=2, since=since
    )
    by_key = {r.key: r for r in dead}
    assert "not a CloudEvent" in by_key["poison-1"].headers["x-dead-letter-reason"]
    assert by_key["poison-2"].headers["x-dead-letter-kind"] == "poison"
    assert "ValidationError" in by_key["poison-2"].headers["x-dead-letter-reason"]
    assert by_key["poison-2"].headers["x-original-topic"] == ORDERS.topic
    assert by_key["poison-2"].headers["x-consumer-group"] == POINT_SERVICE_GROUP
    assert by_key["poison-2"].headers["ce_id"] == bad_id


async def test_grant_points_command_and_a_command_that_cannot_apply(
    points_db: asyncpg.Connection, rabbit: RabbitAdmin
) -> None:
    customer = f"cmd-{uuid.uuid4().hex[:8]}"
    good, bad = str(uuid.uuid4()), str(uuid.uuid4())
    before = await rabbit.wait_for_depth(POINT_COMMANDS_DEAD_LETTER, 0, timeout_s=0)
    await rabbit.publish(
        POINT_COMMANDS.exchange,
        POINT_COMMANDS.routing_key,
        json.dumps({"customer_id": customer, "points": 25, "reason": "goodwill"}),
        headers=cloudevent_headers("point.grant", message_id=good),
        properties={"content_type": "application/json", "message_id": good},
    )
    await rabbit.publish(
        POINT_COMMANDS.exchange,
        POINT_COMMANDS.routing_key,
        json.dumps({"customer_id": customer, "points": -1000, "reason": "too much"}),
        headers=cloudevent_headers("point.grant", message_id=bad),
        properties={"content_type": "application/json", "message_id": bad},
    )
    await rabbit.publish(POINT_COMMANDS.exchange, POINT_COMMANDS.routing_key, "garbage")
    assert (
        await wait_for_rows(
            points_db,
            "select count(*) from point_ledger where customer_id = $1",
            customer,
            expected=1,
        )
        == 1
    )
    assert (
        await points_db.fetchval(
            "select balance from point_balances where customer_id = $1", customer
        )
        == 25
    )
    assert await rabbit.wait_for_depth(POINT_COMMANDS_DEAD_LETTER, before + 2) >= before + 2
    parked = await rabbit.peek(POINT_COMMANDS_DEAD_LETTER, 1000)
    reasons = {m["properties"].get("message_id"): m["properties"]["headers"] for m in parked}
    assert "cannot apply -1000" in reasons[bad]["x-dead-letter-reason"]
    assert any("not a CloudEvent" in h["x-dead-letter-reason"] for h in reasons.values())


async def test_summary_answers_within_the_timeout_while_point_service_is_down(
    local_stack: LocalStack, supervisor: Supervisor, api: httpx.AsyncClient
) -> None:
    customer = f"sum-{uuid.uuid4().hex[:8]}"
    await place(api, customer)
    async with stopped(local_stack, supervisor, "point-service"):
        started = time.monotonic()
        summary = await api.get(f"/customers/{customer}/summary")
        elapsed = time.monotonic() - started
        assert summary.status_code == 200
        assert summary.json()["points"]["status"] == "unavailable"
        assert summary.json()["orders"] == 1
        assert elapsed < 0.5, f"answered after {elapsed:.3f}s"
    for _ in range(50):
        points = (await api.get(f"/customers/{customer}/summary")).json()["points"]
        if points["status"] == "available":
            break
        await asyncio.sleep(0.2)
    assert points == {"status": "available", "balance": 10, "reason": None}


# -- Kafka group helpers ----------------------------------------------------------
async def rewind_group(stack: LocalStack, group: str, by: int) -> int:
    """Move the group's committed offsets back by `by` per partition (the group
    must be empty); return how many records will be read again."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = await kafka.partitions(stack.kafka_bootstrap, ORDERS.topic)
        consumer.assign(tps)
        offsets: dict[TopicPartition, int] = {}
        for tp in tps:
            committed = await consumer.committed(tp) or 0
            offsets[tp] = max(committed - by, 0)
        total = 0
        for tp in tps:
            total += (await consumer.committed(tp) or 0) - offsets[tp]
        await consumer.commit(offsets)
    finally:
        await consumer.stop()
    return total


async def wait_for_members(stack: LocalStack, group: str, count: int) -> list[list[int]]:
    async def members() -> list[list[int]]:
        _, found = await kafka.group_members(stack.kafka_bootstrap, group, ORDERS.topic)
        return [m.partitions for m in found]

    def settled(members: list[list[int]]) -> bool:
        return len(members) >= count and all(members) and sum(len(x) for x in members) == 6

    return await eventually(members, settled, 60)


async def wait_for_lag_zero(stack: LocalStack, group: str, timeout_s: float = 60) -> None:
    ends = await kafka.end_offsets(stack.kafka_bootstrap, ORDERS.topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.kafka_bootstrap, group_id=group)
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            committed = {
                p: await consumer.committed(TopicPartition(ORDERS.topic, p)) or 0 for p in ends
            }
            if all(committed[p] >= ends[p] for p in ends):
                return
            await asyncio.sleep(0.5)
    finally:
        await consumer.stop()
    raise AssertionError(f"group {group} did not catch up within {timeout_s}s")
