"""notification-service against the real stack: priorities, deduplication,
delayed retries through TTL queues, the parking lot, real SMTP delivery."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from catalogue.contracts.notifications import SendNotification
from catalogue.topology import (
    NOTIFICATION_PARKING_LOT,
    NOTIFICATION_SEND,
    notification_retry_queue,
)
from messaging.consumer import Envelope
from messaging.database import build_engine
from notification_service.adapters.mailer import SmtpMailer
from notification_service.service_layer import handlers
from notification_service.service_layer.unit_of_work import UnitOfWork
from notification_service.settings import NotificationServiceSettings
from stackctl.apps import Apps
from stackctl.components import LocalStack
from stackctl.supervisor import Supervisor
from tests.support.mail import MailCatcher
from tests.support.metrics import Samples, metric, scrape
from tests.support.processes import stopped
from tests.support.rabbit import RabbitAdmin, cloudevent_headers

QUEUE = NOTIFICATION_SEND.routing_key


@pytest.fixture
async def mail(local_stack: LocalStack) -> AsyncIterator[MailCatcher]:
    catcher = MailCatcher.local(local_stack)
    yield catcher
    await catcher.fail_recipients(None)
    await catcher.close()


async def send(
    rabbit: RabbitAdmin,
    recipient: str,
    *,
    kind: str = "order",
    priority: int = 7,
    subject: str = "hello",
    message_id: str | None = None,
) -> str:
    message_id = message_id or str(uuid.uuid4())
    await rabbit.publish(
        NOTIFICATION_SEND.exchange,
        QUEUE,
        json.dumps({"kind": kind, "recipient": recipient, "subject": subject, "body": "text"}),
        headers=cloudevent_headers("notification.send", message_id=message_id),
        properties={
            "content_type": "application/json",
            "message_id": message_id,
            "priority": priority,
        },
    )
    return message_id


async def service_metrics(stack: LocalStack) -> Samples:
    return await scrape(f"http://{stack.s.host}:{stack.s.notification_service_port}/metrics")


def recipient(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}@example.com"


async def test_a_command_becomes_one_delivered_mail_even_when_delivered_twice(
    rabbit: RabbitAdmin, mail: MailCatcher
) -> None:
    to = recipient("dedup")
    message_id = await send(rabbit, to, subject="only once")
    await send(rabbit, to, subject="only once", message_id=message_id)
    delivered = await mail.wait_for(to, 1)
    await asyncio.sleep(2)  # time for the duplicate to be processed too
    delivered = await mail.to(to)
    assert len(delivered) == 1
    assert delivered[0]["Subject"] == "only once"
    headers = await mail.headers(delivered[0]["ID"])
    assert headers["X-Notification-Id"] == [message_id]


async def test_a_delivery_cancelled_after_the_mail_went_out_is_recorded_not_resent(
    local_stack: LocalStack, mail: MailCatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a dropped RabbitMQ connection does to a handler in flight: aiormq
    # cancels it. Here the cancel lands after the SMTP server accepted the mail
    # and before the delivery was recorded, the worst moment.
    for name, value in Apps(local_stack).notification_service_env().items():
        monkeypatch.setenv(name, value)
    settings = NotificationServiceSettings()
    engine = build_engine(settings, "test-cancelled-delivery")
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    accepted, resume = asyncio.Event(), asyncio.Event()

    class PausingMailer(SmtpMailer):
        async def send(self, message_id: str, command: SendNotification) -> None:
            await super().send(message_id, command)
            accepted.set()
            await resume.wait()

    mailer = PausingMailer(
        settings.smtp_host, settings.smtp_port, settings.smtp_timeout_s, "t@example.com", 1
    )
    to = recipient("cancelled")
    command = SendNotification(kind="order", recipient=to, subject="once", body="text")
    env = Envelope(
        id=uuid.uuid4(),
        type=SendNotification.TYPE,
        source="test",
        subject=None,
        time=None,
        schema_version=SendNotification.SCHEMA_VERSION,
        correlation_id="test",
        causation_id=None,
    )
    try:
        first = asyncio.create_task(handlers.deliver(command, env, 1, UnitOfWork(sessions), mailer))
        await asyncio.wait_for(accepted.wait(), 10)
        first.cancel()
        resume.set()
        with pytest.raises(asyncio.CancelledError):
            await first
        # The redelivered command finds the record the cancelled one still wrote.
        again = await asyncio.wait_for(
            handlers.deliver(command, env, 1, UnitOfWork(sessions), mailer), 10
        )
        assert again == handlers.Duplicate()
        await mail.wait_for(to, 1)
        await asyncio.sleep(1)
        assert len(await mail.to(to)) == 1
    finally:
        mailer.close()
        await engine.dispose()


async def test_with_a_backlog_higher_priority_mail_is_delivered_first(
    local_stack: LocalStack, supervisor: Supervisor, rabbit: RabbitAdmin, mail: MailCatcher
) -> None:
    to = recipient("prio")
    async with stopped(local_stack, supervisor, "notification-service"):
        for n in range(30):
            await send(rabbit, to, kind="marketing", priority=1, subject=f"marketing {n}")
        for n in range(10):
            await send(rabbit, to, kind="security", priority=9, subject=f"security {n}")
    delivered = await mail.wait_for(to, 40)
    order = [m["Subject"].split()[0] for m in delivered]
    assert len(order) == 40
    assert order[:10] == ["security"] * 10, order


async def test_smtp_down_means_delayed_retries_then_delivery_once_it_is_back(
    local_stack: LocalStack, supervisor: Supervisor, rabbit: RabbitAdmin, mail: MailCatcher
) -> None:
    to = recipient("retry")
    async with stopped(local_stack, supervisor, "mailpit"):
        await send(rabbit, to, subject="eventually")
        # The first attempt fails and the message waits in a retry queue.
        waited = False
        for _ in range(40):
            if await rabbit.depth(notification_retry_queue(1)) or await rabbit.depth(
                notification_retry_queue(2)
            ):
                waited = True
                break
            await asyncio.sleep(0.25)
        assert waited, "the failed delivery went to a delayed retry queue"
    delivered = await mail.wait_for(to, 1, timeout_s=60)
    assert [m["Subject"] for m in delivered] == ["eventually"]
    # The failures raised inside the SMTP thread were caught and counted.
    samples = await service_metrics(local_stack)
    assert metric(samples, "notification_smtp_failures_total", kind="temporary") >= 1
    assert metric(samples, "notification_deliveries_total", outcome="retry") >= 1


async def test_permanent_smtp_failure_parks_the_message_and_the_cli_redrives_it(
    local_stack: LocalStack, rabbit: RabbitAdmin, mail: MailCatcher
) -> None:
    to = recipient("parked")
    await mail.fail_recipients(550)
    message_id = await send(rabbit, to, subject="parked then sent")
    parked = []
    for _ in range(60):
        parked = [
            m
            for m in await rabbit.peek(NOTIFICATION_PARKING_LOT, 1000)
            if m["properties"].get("message_id") == message_id
        ]
        if parked:
            break
        await asyncio.sleep(0.5)
    assert parked, "the message was parked"
    assert "permanent SMTP failure" in parked[0]["properties"]["headers"]["x-dead-letter-reason"]
    await mail.fail_recipients(None)

    cli = [str(Path(sys.executable).with_name("notification-service")), "parking-lot"]
    env = {**os.environ, **Apps(local_stack).notification_service_env()}
    listing = subprocess.run([*cli, "list"], env=env, capture_output=True, text=True, timeout=60)
    assert message_id in listing.stdout
    assert "550" in listing.stdout
    redrive = subprocess.run(
        [*cli, "retry", message_id], env=env, capture_output=True, text=True, timeout=60
    )
    assert redrive.returncode == 0, redrive.stdout + redrive.stderr
    delivered = await mail.wait_for(to, 1, timeout_s=30)
    assert [m["Subject"] for m in delivered] == ["parked then sent"]


async def test_a_malformed_message_is_parked_at_once_and_the_consumer_keeps_going(
    rabbit: RabbitAdmin, mail: MailCatcher
) -> None:
    bad_id = str(uuid.uuid4())
    await rabbit.publish(
        NOTIFICATION_SEND.exchange,
        QUEUE,
        "{not json",
        properties={"message_id": bad_id, "priority": 5},
    )
    schema_id = str(uuid.uuid4())
    await rabbit.publish(
        NOTIFICATION_SEND.exchange,
        QUEUE,
        json.dumps({"kind": "carrier-pigeon", "recipient": "x@example.com", "subject": "s"}),
        headers=cloudevent_headers("notification.send", message_id=schema_id),
        properties={"message_id": schema_id, "content_type": "application/json"},
    )
    to = recipient("after-poison")
    await send(rabbit, to, subject="still working")
    assert len(await mail.wait_for(to, 1)) == 1
    reasons: dict[str, str] = {}
    for _ in range(40):
        reasons = {
            m["properties"].get("message_id"): m["properties"]["headers"]["x-dead-letter-reason"]
            for m in await rabbit.peek(NOTIFICATION_PARKING_LOT, 1000)
        }
        if bad_id in reasons and schema_id in reasons:
            break
        await asyncio.sleep(0.25)
    assert "not a CloudEvent" in reasons[bad_id]
    assert "ValidationError" in reasons[schema_id]


async def test_the_queue_is_consumed_push_style_with_a_prefetch_limit(
    local_stack: LocalStack, rabbit: RabbitAdmin
) -> None:
    consumers = await rabbit.consumers(QUEUE)
    assert len(consumers) == 1
    assert consumers[0]["prefetch_count"] == 10
    assert consumers[0]["ack_required"] is True
