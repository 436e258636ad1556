"""`point-service rebuild-projection` applies each retained `orders` record
with the live consumer's handlers and judgement (entrypoints/replay.py)."""

from __future__ import annotations

import uuid

import pytest

from messaging.consumer import PoisonMessageError
from messaging.envelope import Contract
from point_service.domain.model import EntryKind
from point_service.entrypoints import replay
from tests.unit.point.builders import CUSTOMER, cancelled, placed, sent
from tests.unit.point.fakes import FakeDatabase
from tests.unit.point.harness import settings

SETTINGS = settings()


async def apply(
    db: FakeDatabase,
    data: Contract,
    message_id: uuid.UUID | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Apply `data` as a Kafka record (header values are bytes there)."""
    wire = {**sent(data, message_id).binary_mode_headers(), **(headers or {})}
    record_headers = [(k, v.encode()) for k, v in wire.items()]
    await replay.apply(record_headers, data.model_dump_json().encode(), db.unit_of_work, SETTINGS)


async def test_the_replay_grants_and_revokes_as_the_live_consumer(db: FakeDatabase) -> None:
    order = placed("12.50")
    await apply(db, order)
    await apply(db, cancelled(order.order_id))
    assert [(e.kind, e.points) for e in db.ledger] == [
        (EntryKind.GRANT, 12),
        (EntryKind.REVOKE, -12),
    ]
    assert db.balances == {CUSTOMER: 0}


async def test_a_record_read_twice_is_applied_once(db: FakeDatabase) -> None:
    order, message_id = placed(), uuid.uuid4()
    await apply(db, order, message_id)
    await apply(db, order, message_id)
    assert (len(db.ledger), db.commits) == (1, 1)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [({"ce_type": "order.shipped"}, "no handler"), ({"ce_schemaversion": "2"}, "schema version")],
    ids=["unknown-type", "schema-version"],
)
async def test_what_the_live_consumer_dead_letters_is_skipped(
    db: FakeDatabase, headers: dict[str, str], reason: str
) -> None:
    with pytest.raises(PoisonMessageError, match=reason):
        await apply(db, placed(), headers=headers)
    assert db.opened == 0
