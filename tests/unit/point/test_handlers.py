"""The use cases called directly with the in-memory unit of work, as the
replay calls them: no broker, no database."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from catalogue.contracts.points import PointsGranted
from point_service.domain.model import EntryKind, InsufficientPointsError
from point_service.service_layer import handlers
from tests.unit.point.builders import CUSTOMER, FLOW, cancelled, envelope_of, grant, placed
from tests.unit.point.fakes import FakeDatabase

ONE = Decimal(1)


async def test_order_placed_answers_whether_the_message_was_new(db: FakeDatabase) -> None:
    order = placed()
    env = envelope_of(order)
    assert await handlers.order_placed(order, env, db.unit_of_work(env.caused()), ONE) is True
    assert await handlers.order_placed(order, env, db.unit_of_work(env.caused()), ONE) is False
    assert db.commits == 1


async def test_order_placed_rounds_the_points_down(db: FakeDatabase) -> None:
    order = placed("19.99")
    env = envelope_of(order)
    await handlers.order_placed(order, env, db.unit_of_work(env.caused()), Decimal("0.5"))
    assert db.balances == {CUSTOMER: 9}


async def test_the_messages_carry_the_unit_of_work_context(db: FakeDatabase) -> None:
    order = placed()
    env = envelope_of(order)
    await handlers.order_placed(order, env, db.unit_of_work(env.caused()), ONE)
    assert {m.context for m in db.outbox} == {env.caused()}
    assert env.caused().correlation_id == FLOW.correlation_id


async def test_a_commit_that_fails_leaves_no_trace_and_the_retry_does_it_all(
    db: FakeDatabase,
) -> None:
    order = placed()
    env = envelope_of(order)
    db.failures.append(ConnectionRefusedError("gone"))
    with pytest.raises(ConnectionRefusedError):
        await handlers.order_placed(order, env, db.unit_of_work(env.caused()), ONE)
    assert (db.inbox, db.ledger, db.balances, db.outbox) == (set(), [], {}, [])
    assert await handlers.order_placed(order, env, db.unit_of_work(env.caused()), ONE)
    assert (len(db.ledger), len(db.outbox)) == (1, 2)


async def test_order_cancelled_revokes_what_was_granted(db: FakeDatabase) -> None:
    order = placed("30.00")
    env = envelope_of(order)
    await handlers.order_placed(order, env, db.unit_of_work(env.caused()), ONE)
    cancel = cancelled(order.order_id)
    env = envelope_of(cancel)
    await handlers.order_cancelled(cancel, env, db.unit_of_work(env.caused()))
    assert db.balances == {CUSTOMER: 0}
    assert [(e.kind, e.points) for e in db.ledger] == [
        (EntryKind.GRANT, 30),
        (EntryKind.REVOKE, -30),
    ]


async def test_a_redelivered_cancellation_is_skipped(db: FakeDatabase) -> None:
    cancel = cancelled(uuid.uuid4())
    env = envelope_of(cancel)
    for _ in range(2):
        await handlers.order_cancelled(cancel, env, db.unit_of_work(env.caused()))
    assert db.commits == 1


async def test_grant_points_rejects_an_adjustment_below_zero_and_keeps_nothing(
    db: FakeDatabase,
) -> None:
    command = grant(-5)
    env = envelope_of(command)
    with pytest.raises(InsufficientPointsError, match="has 0 points; cannot apply -5"):
        await handlers.grant_points(command, env, db.unit_of_work(env.caused()))
    assert (db.inbox, db.ledger, db.balances, db.commits) == (set(), [], {}, 0)


async def test_grant_points_records_the_command_as_the_cause(db: FakeDatabase) -> None:
    command = grant(7, "welcome")
    env = envelope_of(command)
    await handlers.grant_points(command, env, db.unit_of_work(env.caused()))
    [entry] = db.ledger
    assert (entry.cause, entry.reason) == (env.id, "welcome")
    [event] = db.outbox
    assert isinstance(event.data, PointsGranted)
    assert event.context.causation_id == str(env.id)


async def test_point_balance_reads_without_committing(db: FakeDatabase) -> None:
    db.balances[CUSTOMER] = 12
    answer = await handlers.point_balance(CUSTOMER, db.unit_of_work(FLOW))
    assert (answer.customer_id, answer.balance) == (CUSTOMER, 12)
    assert (await handlers.point_balance("nobody", db.unit_of_work(FLOW))).balance == 0
    assert (db.commits, db.inbox) == (0, set())
