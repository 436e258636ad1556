"""Every door of point-service through its real FastStream routers, brokers,
middlewares and dead-letter policy (FastStream's in-memory test brokers), over
the in-memory database: what was stored, committed, sent and dead-lettered."""

from __future__ import annotations

import json
import uuid

import pytest
from faststream.rabbit import Channel
from prometheus_client import REGISTRY

from catalogue.contracts.notifications import SendNotification
from catalogue.contracts.points import PointsGranted, PointsRevoked
from catalogue.topology import (
    DEAD_LETTER_EXCHANGE,
    NOTIFICATION_SEND,
    ORDERS,
    ORDERS_POINT_SERVICE_DLT,
    POINT_COMMANDS,
    POINTS,
)
from messaging.consumer import PoisonMessageError
from point_service.domain.model import EntryKind
from point_service.entrypoints import consumers
from point_service.service_layer.handlers import COMMANDS_CONSUMER, ORDERS_CONSUMER
from tests.unit.point.builders import CUSTOMER, EMAIL, FLOW, cancelled, grant, placed
from tests.unit.point.fakes import FakeDatabase
from tests.unit.point.harness import Point, running

COMMANDS_DEAD_LETTERS = f"{DEAD_LETTER_EXCHANGE}/{POINT_COMMANDS.routing_key}"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def reason(point: Point) -> str:
    [dead] = point.dead
    return str(dead.headers["x-dead-letter-reason"])


# -- orders: OrderPlaced ----------------------------------------------------------
async def test_an_order_placed_grants_its_points_and_tells_the_customer(point: Point) -> None:
    order = placed("12.50")
    message_id = await point.send(order)

    assert point.db.balances == {CUSTOMER: 12}
    [entry] = point.db.ledger
    assert (entry.kind, entry.points, entry.reason) == (
        EntryKind.GRANT,
        12,
        f"order {order.order_id}",
    )
    assert (entry.order_id, entry.cause) == (order.order_id, message_id)
    assert point.db.inbox == {(ORDERS_CONSUMER, message_id)}
    granted, mail = point.db.outbox
    assert (granted.destination, granted.subject) == (POINTS, CUSTOMER)
    assert isinstance(granted.data, PointsGranted)
    assert (granted.data.order_id, granted.data.points, granted.data.balance) == (
        order.order_id,
        12,
        12,
    )
    # The mail is about the order, as the order's confirmation is.
    assert (mail.destination, mail.subject, mail.priority) == (
        NOTIFICATION_SEND,
        str(order.order_id),
        5,
    )
    assert isinstance(mail.data, SendNotification)
    assert mail.data.recipient == EMAIL
    assert point.dead == []


async def test_what_an_order_sends_continues_its_flow(point: Point) -> None:
    message_id = await point.send(placed())
    for message in point.db.outbox:
        assert message.context.correlation_id == FLOW.correlation_id
        assert message.context.causation_id == str(message_id)


async def test_the_earning_rate_is_a_setting(db: FakeDatabase, no_backoff: None) -> None:
    async with running(db, points_per_currency_unit="2.5") as point:
        await point.send(placed("10.99"))
    assert db.balances == {CUSTOMER: 27}


async def test_an_order_worth_no_points_is_recorded_and_sends_nothing(point: Point) -> None:
    message_id = await point.send(placed("0.99"))
    assert point.db.inbox == {(ORDERS_CONSUMER, message_id)}
    assert (point.db.ledger, point.db.balances, point.db.outbox) == ([], {}, [])
    assert point.db.commits == 1


async def test_a_redelivered_order_placed_changes_nothing(point: Point) -> None:
    order = placed()
    message_id = await point.send(order)
    await point.send(order, message_id=message_id)
    assert len(point.db.ledger) == 1
    assert len(point.db.outbox) == 2, "the grant and the mail, once"
    assert point.db.commits == 1, "the duplicate commits nothing"


async def test_a_message_the_inbox_has_seen_is_skipped(point: Point) -> None:
    message_id = uuid.uuid4()
    point.db.inbox.add((ORDERS_CONSUMER, message_id))
    await point.send(placed(), message_id=message_id)
    assert (point.db.ledger, point.db.balances, point.db.outbox) == ([], {}, [])


async def test_the_same_order_placed_twice_under_new_ids_grants_once(point: Point) -> None:
    order = placed()
    first, second = await point.send(order), await point.send(order)
    assert point.db.balances == {CUSTOMER: 12}
    assert [e.cause for e in point.db.ledger] == [first]
    assert {(ORDERS_CONSUMER, first), (ORDERS_CONSUMER, second)} == point.db.inbox
    assert len(point.db.outbox) == 2


async def test_the_order_to_points_latency_is_observed_on_first_delivery_only(
    point: Point,
) -> None:
    before = sample("order_to_points_seconds_count")
    order = placed()
    message_id = await point.send(order)
    await point.send(order, message_id=message_id)
    assert sample("order_to_points_seconds_count") == before + 1


# -- orders: OrderCancelled ---------------------------------------------------------
async def test_a_cancelled_order_gives_back_its_points(point: Point) -> None:
    order = placed()
    await point.send(order)
    message_id = await point.send(cancelled(order.order_id))

    assert point.db.balances == {CUSTOMER: 0}
    revoke = point.db.ledger[-1]
    assert (revoke.kind, revoke.points, revoke.cause) == (EntryKind.REVOKE, -12, message_id)
    revoked = point.db.outbox[-1]
    assert (revoked.destination, revoked.subject) == (POINTS, CUSTOMER)
    assert isinstance(revoked.data, PointsRevoked)
    assert (revoked.data.points, revoked.data.balance, revoked.data.reason) == (
        12,
        0,
        "order cancelled",
    )


async def test_cancelling_an_order_that_granted_nothing_changes_nothing(point: Point) -> None:
    message_id = await point.send(cancelled(uuid.uuid4()))
    assert point.db.inbox == {(ORDERS_CONSUMER, message_id)}
    assert (point.db.ledger, point.db.balances, point.db.outbox) == ([], {}, [])


async def test_an_order_cancelled_twice_is_revoked_once(point: Point) -> None:
    order = placed()
    await point.send(order)
    await point.send(cancelled(order.order_id))
    await point.send(cancelled(order.order_id))
    assert [e.kind for e in point.db.ledger] == [EntryKind.GRANT, EntryKind.REVOKE]
    assert [type(m.data) for m in point.db.outbox] == [
        PointsGranted,
        SendNotification,
        PointsRevoked,
    ]


async def test_points_already_spent_are_not_revoked_below_zero(point: Point) -> None:
    order = placed("12.00")
    await point.send(order)
    await point.send(grant(-10))
    await point.send(cancelled(order.order_id))
    assert point.db.balances == {CUSTOMER: 0}
    assert point.db.ledger[-1].points == -2
    revoked = point.db.outbox[-1].data
    assert isinstance(revoked, PointsRevoked)
    assert (revoked.points, revoked.balance) == (2, 0)


async def test_a_cancellation_with_nothing_left_settles_the_order_silently(point: Point) -> None:
    order = placed("12.00")
    await point.send(order)
    await point.send(grant(-12))
    sent_before = len(point.db.outbox)
    await point.send(cancelled(order.order_id))
    assert (point.db.ledger[-1].kind, point.db.ledger[-1].points) == (EntryKind.REVOKE, 0)
    assert len(point.db.outbox) == sent_before, "no event for 0 points"


# -- point.commands: GrantPoints ------------------------------------------------------
async def test_a_positive_adjustment_is_granted(point: Point) -> None:
    message_id = await point.send(grant(50, "birthday"))
    assert point.db.balances == {CUSTOMER: 50}
    [entry] = point.db.ledger
    assert (entry.kind, entry.points, entry.reason, entry.order_id) == (
        EntryKind.ADJUSTMENT,
        50,
        "birthday",
        None,
    )
    assert point.db.inbox == {(COMMANDS_CONSUMER, message_id)}
    [event] = point.db.outbox
    assert (event.destination, event.subject) == (POINTS, CUSTOMER)
    assert isinstance(event.data, PointsGranted)
    assert (event.data.points, event.data.order_id, event.data.reason) == (50, None, "birthday")


async def test_a_negative_adjustment_is_revoked(point: Point) -> None:
    await point.send(grant(50))
    await point.send(grant(-20, "correction"))
    assert point.db.balances == {CUSTOMER: 30}
    event = point.db.outbox[-1].data
    assert isinstance(event, PointsRevoked)
    assert (event.points, event.balance, event.reason) == (20, 30, "correction")


async def test_a_redelivered_command_is_applied_once(point: Point) -> None:
    message_id = await point.send(grant(5))
    await point.send(grant(5), message_id=message_id)
    assert point.db.balances == {CUSTOMER: 5}


async def test_an_adjustment_below_zero_is_dead_lettered_and_changes_nothing(
    point: Point,
) -> None:
    await point.send(grant(-1))
    [dead] = point.dead
    assert dead.destination == COMMANDS_DEAD_LETTERS
    assert dead.headers["x-dead-letter-kind"] == "poison"
    assert dead.headers["x-dead-letter-reason"].startswith("InsufficientPointsError")
    assert json.loads(dead.body) == grant(-1).model_dump(mode="json"), "the original body"
    assert (point.db.inbox, point.db.ledger, point.db.outbox) == (set(), [], [])
    assert point.db.opened == 1, "not retried"


async def test_a_command_of_another_type_is_dead_lettered(point: Point) -> None:
    await point.send(grant(5), headers={"ce-type": "point.take"})
    assert point.dead[0].destination == COMMANDS_DEAD_LETTERS
    assert "takes point.grant, not 'point.take'" in reason(point)
    assert point.db.opened == 0


async def test_a_command_at_another_schema_version_is_dead_lettered(point: Point) -> None:
    await point.send(grant(5), headers={"ce-schemaversion": "2"})
    assert "schema version 2 is not supported" in reason(point)
    assert point.db.balances == {}


async def test_a_command_with_a_malformed_body_is_dead_lettered(point: Point) -> None:
    await point.send(grant(5), body=b'{"customer_id": "c-1", "points": 0, "reason": "x"}')
    assert reason(point).startswith("ValidationError")
    assert point.db.opened == 0


# -- orders: what cannot be processed ---------------------------------------------------
async def test_an_unknown_event_type_is_dead_lettered(point: Point) -> None:
    await point.send(placed(), headers={"ce_type": "order.shipped"})
    [dead] = point.dead
    assert dead.destination == ORDERS_POINT_SERVICE_DLT.topic
    assert dead.headers["x-original-topic"] == ORDERS.topic
    assert dead.headers["x-dead-letter-reason"] == (
        "PoisonMessageError: no handler for message type 'order.shipped'"
    )
    assert point.db.opened == 0


async def test_an_event_at_another_schema_version_is_dead_lettered(point: Point) -> None:
    await point.send(placed(), headers={"ce_schemaversion": "2"})
    assert point.dead[0].destination == ORDERS_POINT_SERVICE_DLT.topic
    assert "order.placed schema version 2 is not supported" in reason(point)
    assert point.db.opened == 0


@pytest.mark.parametrize(
    ("body", "error"),
    [(b'{"order_id": "not a uuid"}', "ValidationError"), (b"{not json", "JSONDecodeError")],
    ids=["not-the-contract", "not-json"],
)
async def test_a_malformed_event_is_dead_lettered(point: Point, body: bytes, error: str) -> None:
    await point.send(placed(), body=body)
    [dead] = point.dead
    assert (dead.destination, dead.body) == (ORDERS_POINT_SERVICE_DLT.topic, body)
    assert dead.headers["x-dead-letter-reason"].startswith(error)
    assert point.db.opened == 0


async def test_a_message_that_is_not_a_cloudevent_is_dead_lettered(point: Point) -> None:
    await point.send(placed(), headers={"ce_id": ""})
    assert "not a CloudEvent: missing id" in reason(point)


async def test_the_consumer_goes_on_after_a_dead_letter(point: Point) -> None:
    await point.send(placed(), body=b"{not json")
    await point.send(placed())
    assert (len(point.dead), point.db.balances) == (1, {CUSTOMER: 12})


# -- the database unavailable, a handler failing -----------------------------------------
async def test_a_commit_the_database_refused_is_retried_in_place(point: Point) -> None:
    point.db.failures.append(ConnectionRefusedError("connection refused"))
    await point.send(placed())
    assert point.db.balances == {CUSTOMER: 12}
    assert (point.db.opened, point.db.commits, len(point.db.outbox)) == (2, 1, 2)
    assert point.dead == []


async def test_a_long_outage_is_waited_out_never_dead_lettered(point: Point) -> None:
    """Unavailability is not the message's fault: retried past the attempts a
    failing message gets, for as long as it lasts."""
    before = sample("messaging_handler_retries_total", source=ORDERS.topic, kind="transient")
    point.db.failures += [OSError("network is unreachable")] * 12
    await point.send(placed())
    assert point.dead == []
    assert (point.db.opened, point.db.balances) == (13, {CUSTOMER: 12})
    after = sample("messaging_handler_retries_total", source=ORDERS.topic, kind="transient")
    assert after == before + 12


async def test_a_command_the_database_refused_is_retried_in_place(point: Point) -> None:
    point.db.failures.append(ConnectionRefusedError("connection refused"))
    await point.send(grant(5))
    assert (point.db.balances, point.dead) == ({CUSTOMER: 5}, [])


async def test_a_failing_message_is_dead_lettered_after_its_attempts(
    db: FakeDatabase, no_backoff: None
) -> None:
    db.failures += [RuntimeError("bug")] * 3
    async with running(db, consumer_max_attempts=3) as point:
        await point.send(placed())
    [dead] = point.dead
    assert dead.headers["x-dead-letter-kind"] == "failing"
    assert dead.headers["x-dead-letter-reason"] == "failed 3 times; last: RuntimeError: bug"
    assert (db.opened, db.commits, db.balances) == (3, 0, {})


# -- point.balance: request/reply ---------------------------------------------------------
async def test_a_balance_request_is_answered_through_direct_reply_to(point: Point) -> None:
    await point.send(grant(42))
    await point.ask_balance(CUSTOMER)
    [reply] = point.replies
    answer = json.loads(reply.body)
    assert (answer["customer_id"], answer["balance"]) == (CUSTOMER, 42)
    assert reply.correlation_id == "request-1"
    assert point.db.commits == 1, "a read commits nothing"


async def test_the_balance_of_an_unknown_customer_is_zero(point: Point) -> None:
    await point.ask_balance("nobody")
    [reply] = point.replies
    assert json.loads(reply.body)["balance"] == 0


async def test_a_balance_request_naming_another_reply_queue_gets_no_answer(point: Point) -> None:
    with pytest.raises(PoisonMessageError, match="direct reply-to only"):
        await point.ask_balance(CUSTOMER, reply_to=POINT_COMMANDS.routing_key)
    assert (point.replies, point.dead) == ([], [])
    assert point.db.opened == 0


async def test_a_balance_read_that_fails_is_dropped_not_retried(point: Point) -> None:
    """The caller has given up after its timeout: no retry, no dead letter."""
    point.db.down = True
    with pytest.raises(ConnectionRefusedError):
        await point.ask_balance(CUSTOMER)
    assert (point.replies, point.dead, point.db.opened) == ([], [], 1)


# -- wiring --------------------------------------------------------------------------------
async def test_the_consumer_group_and_the_prefetch_are_settings(db: FakeDatabase) -> None:
    async with running(db, consumer_group="point-service-blue", rabbitmq_prefetch=7):
        assert consumers.order_events.group_id == "point-service-blue"
        channels = {id(consumers.point_commands.channel), id(consumers.balance_requests.channel)}
        assert len(channels) == 1, "one channel for both queues"
        assert isinstance(consumers.point_commands.channel, Channel)
        assert consumers.point_commands.channel.prefetch_count == 7
