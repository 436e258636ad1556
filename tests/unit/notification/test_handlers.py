"""The delivery use case over the in-memory unit of work and mailer: the
outcomes, one mail for concurrent copies (the inbox insert waits on the first
copy's uncommitted row) and the shielded send-and-record."""

from __future__ import annotations

import asyncio
import logging

import pytest

from catalogue.contracts.notifications import SendNotification
from notification_service.adapters.mailer import PermanentDeliveryError, TemporaryDeliveryError
from notification_service.service_layer import handlers
from notification_service.service_layer.handlers import (
    CONSUMER,
    Delivered,
    Duplicate,
    Park,
    RetryLater,
    deliver,
)
from tests.unit.notification.builders import envelope_of, mail
from tests.unit.notification.fakes import FakeDatabase, FakeMailer


async def test_a_delivery_sends_the_mail_under_the_command_id_and_records_it(
    db: FakeDatabase, mailer: FakeMailer
) -> None:
    command = mail()
    env = envelope_of(command)
    assert await deliver(command, env, 2, db.unit_of_work(), mailer) == Delivered()
    assert mailer.sent == [(str(env.id), command)]
    assert db.deliveries[env.id].attempts == 2
    assert db.inbox == {(CONSUMER, env.id)}


async def test_a_second_delivery_of_the_same_message_is_a_duplicate(
    db: FakeDatabase, mailer: FakeMailer
) -> None:
    command = mail()
    env = envelope_of(command)
    await deliver(command, env, 1, db.unit_of_work(), mailer)
    assert await deliver(command, env, 1, db.unit_of_work(), mailer) == Duplicate()
    assert (len(mailer.sent), db.commits) == (1, 1)


@pytest.mark.parametrize(
    ("attempt", "outcome"),
    [
        (1, RetryLater(2, "421 busy")),
        (3, RetryLater(4, "421 busy")),
        (4, Park("still failing after 4 attempts: 421 busy")),
    ],
)
async def test_a_temporary_failure_is_retried_until_the_last_attempt(
    db: FakeDatabase, mailer: FakeMailer, attempt: int, outcome: object
) -> None:
    mailer.refusals.append(TemporaryDeliveryError("421 busy"))
    command = mail()
    assert await deliver(command, envelope_of(command), attempt, db.unit_of_work(), mailer) == (
        outcome
    )
    assert (db.deliveries, db.inbox, db.commits) == ({}, set(), 0)


async def test_a_permanent_failure_parks_at_the_first_attempt(
    db: FakeDatabase, mailer: FakeMailer
) -> None:
    mailer.refusals.append(PermanentDeliveryError("550 mailbox unavailable"))
    command = mail()
    outcome = await deliver(command, envelope_of(command), 1, db.unit_of_work(), mailer)
    assert outcome == Park("permanent SMTP failure: 550 mailbox unavailable")
    assert (db.deliveries, db.commits) == ({}, 0)


async def test_two_copies_at_the_same_time_mail_once(db: FakeDatabase, mailer: FakeMailer) -> None:
    """The second copy's inbox insert waits on the first one's uncommitted row,
    then finds it committed (prefetch lets copies run concurrently)."""
    mailer.hold()
    command = mail()
    env = envelope_of(command)
    first = asyncio.create_task(deliver(command, env, 1, db.unit_of_work(), mailer))
    await mailer.accepted.wait()
    second = asyncio.create_task(deliver(command, env, 1, db.unit_of_work(), mailer))
    await asyncio.sleep(0.01)
    assert not second.done(), "waiting on the first copy's inbox row"
    mailer.release()
    outcomes = await asyncio.gather(first, second)
    assert list(outcomes) == [Delivered(), Duplicate()]
    assert len(mailer.sent) == 1
    assert db.uncommitted == {}


async def test_a_copy_waiting_on_one_that_failed_delivers_the_mail(
    db: FakeDatabase, mailer: FakeMailer
) -> None:
    """The first copy's transaction rolls back (a temporary SMTP failure): the
    waiting copy's inbox insert then writes the row, and it mails."""
    reached, refuse = asyncio.Event(), asyncio.Event()

    class RefusingWhenTold(FakeMailer):
        async def send(self, message_id: str, command: SendNotification) -> None:
            reached.set()
            await refuse.wait()
            raise TemporaryDeliveryError("421 busy")

    command = mail()
    env = envelope_of(command)
    first = asyncio.create_task(deliver(command, env, 1, db.unit_of_work(), RefusingWhenTold()))
    await reached.wait()
    second = asyncio.create_task(deliver(command, env, 1, db.unit_of_work(), mailer))
    await asyncio.sleep(0.01)
    assert not second.done(), "waiting on the first copy's inbox row"
    refuse.set()
    assert await first == RetryLater(2, "421 busy")
    assert await second == Delivered()
    assert (mailer.sent, list(db.deliveries), db.commits) == ([(str(env.id), command)], [env.id], 1)


async def test_a_delivery_cancelled_after_the_mail_went_out_is_recorded_not_resent(
    db: FakeDatabase, mailer: FakeMailer
) -> None:
    """What a dropped RabbitMQ connection does to a handler in flight (aiormq
    cancels it), at the worst moment: after the SMTP server accepted the mail,
    before the delivery was recorded (the integration test's twin)."""
    mailer.hold()
    command = mail()
    env = envelope_of(command)
    first = asyncio.create_task(deliver(command, env, 1, db.unit_of_work(), mailer))
    await asyncio.wait_for(mailer.accepted.wait(), 1)
    first.cancel()
    mailer.release()
    with pytest.raises(asyncio.CancelledError):
        await first
    again = await asyncio.wait_for(deliver(command, env, 1, db.unit_of_work(), mailer), 1)
    assert again == Duplicate()
    assert (len(mailer.sent), list(db.deliveries)) == (1, [env.id])


async def test_a_delivery_whose_caller_was_cancelled_leaves_a_trace_when_it_fails(
    db: FakeDatabase, mailer: FakeMailer, caplog: pytest.LogCaptureFixture
) -> None:
    mailer.hold()
    db.failures.append(RuntimeError("commit refused"))
    command = mail()
    first = asyncio.create_task(
        deliver(command, envelope_of(command), 1, db.unit_of_work(), mailer)
    )
    await mailer.accepted.wait()
    [under_way] = handlers._UNDER_WAY
    first.cancel()
    with caplog.at_level(logging.WARNING, logger=handlers.__name__):
        mailer.release()
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.wait([under_way])
    assert "delivery failed: RuntimeError('commit refused')" in caplog.messages


async def test_an_error_reaches_the_caller_and_records_nothing(
    db: FakeDatabase, mailer: FakeMailer
) -> None:
    db.refusals.append(ConnectionRefusedError("connection refused"))
    command = mail()
    with pytest.raises(ConnectionRefusedError):
        await deliver(command, envelope_of(command), 1, db.unit_of_work(), mailer)
    assert (mailer.sent, db.deliveries) == ([], {})
