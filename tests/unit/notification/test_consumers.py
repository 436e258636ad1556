"""The `notification.send` door through its real FastStream router, broker,
middlewares and dead-letter policy (FastStream's in-memory test broker), over
the in-memory database and mailer: what was mailed, recorded, retried and
parked."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from faststream.rabbit import Channel
from prometheus_client import REGISTRY

from catalogue.contracts.notifications import NotificationKind
from notification_service.adapters.mailer import PermanentDeliveryError, TemporaryDeliveryError
from notification_service.domain.model import Delivery
from notification_service.entrypoints import consumers
from notification_service.service_layer.handlers import CONSUMER
from tests.unit.notification.builders import RECIPIENT, mail, sent
from tests.unit.notification.fakes import FakeDatabase, FakeMailer
from tests.unit.notification.harness import QUEUE, Notification, running

ATTEMPT = "x-delivery-attempt"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def outcomes(outcome: str, kind: str = "order") -> float:
    return sample("notification_deliveries_total", kind=kind, outcome=outcome)


def reason(notification: Notification) -> str:
    [parked] = notification.parked
    return str(parked.headers["x-dead-letter-reason"])


# -- delivered ------------------------------------------------------------------------
async def test_a_command_is_mailed_recorded_and_committed(notification: Notification) -> None:
    command = mail(subject="Order 42 confirmed")
    message_id = await notification.send(command)

    assert notification.mailer.sent == [(str(message_id), command)]
    assert notification.db.deliveries == {
        message_id: Delivery(message_id, "order", RECIPIENT, "Order 42 confirmed", 1)
    }
    assert notification.db.inbox == {(CONSUMER, message_id)}
    assert notification.db.commits == 1
    assert (notification.parked, notification.retried) == ([], [])


async def test_each_delivery_is_counted_by_kind_and_outcome(notification: Notification) -> None:
    before = outcomes("delivered", kind="security")
    await notification.send(mail(NotificationKind.SECURITY))
    assert outcomes("delivered", kind="security") == before + 1


async def test_the_end_to_end_time_is_observed_on_first_delivery_only(
    notification: Notification,
) -> None:
    """From the command's CloudEvents time to the mail being accepted."""

    def observed() -> tuple[float, float]:
        return (
            sample("notification_end_to_end_seconds_count", kind="points"),
            sample("notification_end_to_end_seconds_sum", kind="points"),
        )

    (count, total) = observed()
    command = mail(NotificationKind.POINTS)
    written = datetime.now(UTC) - timedelta(seconds=3)
    message_id = await notification.send(command, at=written)
    await notification.send(command, message_id=message_id, at=written)
    assert observed()[0] == count + 1
    assert 3 <= observed()[1] - total < 10


async def test_an_attempt_header_in_range_is_the_attempts_the_delivery_took(
    notification: Notification,
) -> None:
    message_id = await notification.send(mail(), headers={ATTEMPT: "3"})
    assert notification.db.deliveries[message_id].attempts == 3


# -- duplicates -----------------------------------------------------------------------
async def test_a_redelivered_command_is_mailed_once(notification: Notification) -> None:
    before = (
        outcomes("duplicate"),
        sample("messaging_duplicates_skipped_total", consumer=CONSUMER),
    )
    command = mail()
    message_id = await notification.send(command)
    await notification.send(command, message_id=message_id)
    assert len(notification.mailer.sent) == 1
    assert notification.db.commits == 1, "the duplicate commits nothing"
    after = (
        outcomes("duplicate"),
        sample("messaging_duplicates_skipped_total", consumer=CONSUMER),
    )
    assert after == (before[0] + 1, before[1] + 1)


async def test_a_command_the_inbox_has_seen_is_not_mailed(notification: Notification) -> None:
    message_id = uuid.uuid4()
    notification.db.inbox.add((CONSUMER, message_id))
    await notification.send(mail(), message_id=message_id)
    assert (notification.mailer.sent, notification.db.deliveries) == ([], {})


async def test_a_copy_whose_inbox_row_was_purged_is_found_in_the_delivery_history(
    notification: Notification,
) -> None:
    command = mail()
    message_id = await notification.send(command)
    notification.db.inbox.clear()  # the inbox's retention window is shorter
    await notification.send(command, message_id=message_id)
    assert len(notification.mailer.sent) == 1
    assert notification.db.inbox == set(), "nothing recorded for the duplicate"


async def test_the_same_mail_under_a_new_id_is_a_new_command(notification: Notification) -> None:
    command = mail()
    first, second = await notification.send(command), await notification.send(command)
    assert [m for m, _ in notification.mailer.sent] == [str(first), str(second)]


# -- what can never be delivered: parked at once ------------------------------------------
async def test_a_command_of_another_type_is_parked_before_any_work(
    notification: Notification,
) -> None:
    await notification.send(mail(), headers={"ce-type": "notification.fax"})
    [parked] = notification.parked
    assert parked.queue == QUEUE, "the parking lot's binding"
    assert parked.headers["x-dead-letter-kind"] == "poison"
    assert reason(notification) == (
        "PoisonMessageError: notification.send takes notification.send v1, not notification.fax"
    )
    assert (notification.db.opened, notification.mailer.sent) == (0, [])


async def test_a_command_at_another_schema_version_is_parked(notification: Notification) -> None:
    await notification.send(mail(), headers={"ce-schemaversion": "2"})
    assert "notification.send schema version 2 is not supported" in reason(notification)
    assert (notification.db.opened, notification.mailer.sent) == (0, [])


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"kind": "carrier-pigeon", "recipient": "x@example.com", "subject": "s"}', "Validation"),
        (b"{not json", "JSONDecodeError"),
    ],
    ids=["not-the-contract", "not-json"],
)
async def test_a_malformed_command_is_parked_as_it_came(
    notification: Notification, body: bytes, error: str
) -> None:
    await notification.send(mail(), body=body)
    [parked] = notification.parked
    assert parked.body == body
    assert reason(notification).startswith(error)
    assert parked.headers["x-original-queue"] == QUEUE
    assert (notification.db.opened, notification.mailer.sent) == (0, [])


async def test_a_message_that_is_not_a_cloudevent_is_parked(notification: Notification) -> None:
    await notification.send(mail(), headers={"ce-id": ""})
    assert "not a CloudEvent: missing id" in reason(notification)


@pytest.mark.parametrize("attempt", ["abc", "0", 5, "5", -1], ids=repr)
async def test_a_forged_attempt_header_is_parked_before_any_mail(
    notification: Notification, attempt: object
) -> None:
    await notification.send(mail(), headers={ATTEMPT: attempt})
    assert reason(notification) == (
        f"PoisonMessageError: x-delivery-attempt is {attempt!r}, not 1 to 4"
    )
    assert (notification.db.opened, notification.mailer.sent) == (0, [])


async def test_the_consumer_goes_on_after_a_parked_message(notification: Notification) -> None:
    await notification.send(mail(), body=b"{not json")
    await notification.send(mail())
    assert (len(notification.parked), len(notification.mailer.sent)) == (1, 1)


# -- the mail server refuses: delayed retries, then the parking lot ------------------------
async def test_a_temporary_smtp_failure_goes_to_the_first_retry_queue(
    notification: Notification,
) -> None:
    before = outcomes("retry", kind="marketing")
    notification.mailer.refusals.append(TemporaryDeliveryError("421 try later"))
    command = mail(NotificationKind.MARKETING)
    message_id = await notification.send(command)

    [retried] = notification.retried
    assert retried.queue == "notification.send.retry.1"
    assert (retried.headers[ATTEMPT], retried.headers["x-last-error"]) == (2, "421 try later")
    assert retried.headers["ce-id"] == str(message_id), "the CloudEvents headers kept"
    assert json.loads(retried.body) == command.model_dump(mode="json"), "the body unchanged"
    assert (retried.message_id, retried.correlation_id) == (str(message_id), "flow-1")
    assert (retried.content_type, retried.priority) == ("application/json", 1)
    assert (notification.db.deliveries, notification.db.inbox) == ({}, set()), "rolled back"
    assert (notification.db.commits, notification.parked) == (0, [])
    assert outcomes("retry", kind="marketing") == before + 1


@pytest.mark.parametrize(("attempt", "queue"), [(2, 2), (3, 3)])
async def test_each_retry_waits_in_the_queue_of_its_attempt(
    notification: Notification, attempt: int, queue: int
) -> None:
    notification.mailer.refusals.append(TemporaryDeliveryError("451 greylisted"))
    await notification.send(mail(), headers={ATTEMPT: attempt})
    [retried] = notification.retried
    assert retried.queue == f"notification.send.retry.{queue}"
    assert retried.headers[ATTEMPT] == attempt + 1


async def test_a_mail_that_fails_three_times_is_delivered_at_the_fourth_attempt(
    notification: Notification,
) -> None:
    notification.mailer.refusals += [TemporaryDeliveryError("421 busy")] * 3
    message_id = await notification.send(mail())
    for _ in range(3):
        await notification.redeliver(notification.retried[-1])
    assert [r.queue[-1] for r in notification.retried] == ["1", "2", "3"]
    assert notification.db.deliveries[message_id].attempts == 4
    assert (len(notification.mailer.sent), notification.parked) == (1, [])


async def test_the_last_error_is_cut_to_1000_characters(notification: Notification) -> None:
    notification.mailer.refusals.append(TemporaryDeliveryError("x" * 5000))
    await notification.send(mail())
    assert len(notification.retried[0].headers["x-last-error"]) == 1000


async def test_a_failure_at_the_last_attempt_parks_the_command(notification: Notification) -> None:
    before = outcomes("parked")
    notification.mailer.refusals.append(TemporaryDeliveryError("421 still busy"))
    await notification.send(mail(), headers={ATTEMPT: 4})
    [parked] = notification.parked
    assert parked.headers["x-dead-letter-kind"] == "undeliverable"
    assert reason(notification) == "still failing after 4 attempts: 421 still busy"
    assert (notification.retried, notification.db.deliveries) == ([], {})
    assert outcomes("parked") == before + 1


async def test_a_permanent_smtp_failure_parks_the_command_at_once(
    notification: Notification,
) -> None:
    notification.mailer.refusals.append(PermanentDeliveryError("550 no such user"))
    command = mail()
    message_id = await notification.send(command)
    [parked] = notification.parked
    assert (parked.body, parked.message_id) == (
        command.model_dump_json().encode(),
        str(message_id),
    )
    assert parked.headers["x-dead-letter-kind"] == "undeliverable"
    assert reason(notification) == "permanent SMTP failure: 550 no such user"
    assert parked.headers["x-original-queue"] == QUEUE
    assert (notification.retried, notification.db.deliveries, notification.db.inbox) == (
        [],
        {},
        set(),
    )


# -- the database unavailable, a delivery failing -------------------------------------------
async def test_an_unavailable_database_is_waited_for_with_the_message_in_hand(
    notification: Notification,
) -> None:
    before = sample("messaging_handler_retries_total", source=QUEUE, kind="transient")
    notification.db.refusals += [ConnectionRefusedError("connection refused")] * 7
    message_id = await notification.send(mail())
    assert notification.db.opened == 8
    assert list(notification.db.deliveries) == [message_id]
    assert (len(notification.mailer.sent), notification.parked) == (1, [])
    after = sample("messaging_handler_retries_total", source=QUEUE, kind="transient")
    assert after == before + 7


async def test_a_commit_refused_after_the_mail_went_out_mails_again_with_the_same_id(
    notification: Notification,
) -> None:
    """At-least-once: the record did not commit, so the retried message sends
    again; the Message-ID (the command id) is the same, for mail clients to
    show one."""
    notification.db.failures.append(OSError("connection reset"))
    message_id = await notification.send(mail())
    assert [m for m, _ in notification.mailer.sent] == [str(message_id)] * 2
    assert (notification.db.commits, notification.parked) == (1, [])


async def test_a_delivery_failing_for_another_reason_is_parked_after_its_attempts(
    notification: Notification,
) -> None:
    notification.db.failures += [RuntimeError("bug")] * 5
    await notification.send(mail())
    [parked] = notification.parked
    assert parked.headers["x-dead-letter-kind"] == "failing"
    assert reason(notification) == "failed 5 times; last: RuntimeError: bug"
    assert notification.db.deliveries == {}


# -- wiring ---------------------------------------------------------------------------------
async def test_the_prefetch_is_a_setting(db: FakeDatabase, mailer: FakeMailer) -> None:
    async with running(db, mailer, rabbitmq_prefetch=7):
        assert isinstance(consumers.send_notifications.channel, Channel)
        assert consumers.send_notifications.channel.prefetch_count == 7
    async with running(db, mailer):
        assert consumers.send_notifications.channel.prefetch_count == 10


async def test_a_reply_to_gets_no_reply(notification: Notification) -> None:
    headers: dict[str, Any] = {**sent(mail()).binary_mode_headers()}
    await notification.rabbit.publish(
        mail().model_dump_json().encode(),
        QUEUE,
        headers=headers,
        reply_to=QUEUE,
    )
    assert len(notification.mailer.sent) == 1
    assert notification.parked == [], "no reply into notification.send"
