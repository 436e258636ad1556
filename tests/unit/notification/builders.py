"""SendNotification commands as the other services send them, and the
envelopes the door reads from them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from catalogue.contracts.notifications import PRIORITY, NotificationKind, SendNotification
from catalogue.topology import NOTIFICATION_SEND
from messaging.consumer import Envelope
from messaging.envelope import MessageContext, OutgoingMessage

RECIPIENT = "c-1@example.com"
FLOW = MessageContext("flow-1")


def mail(
    kind: NotificationKind = NotificationKind.ORDER, subject: str = "Your order"
) -> SendNotification:
    return SendNotification(kind=kind, recipient=RECIPIENT, subject=subject, body="Thank you.")


def sent(
    command: SendNotification,
    message_id: uuid.UUID | None = None,
    at: datetime | None = None,
    about: str = "c-1",
) -> OutgoingMessage:
    """`command` as its producer's outbox relay sends it, at its kind's priority,
    `about` its CloudEvents subject (an order's id, for order and points mail)."""
    return OutgoingMessage(
        command,
        NOTIFICATION_SEND,
        about,
        "tests",
        FLOW,
        priority=PRIORITY[command.kind],
        id=message_id or uuid.uuid4(),
        time=at or datetime.now(UTC),
    )


def envelope_of(command: SendNotification, message_id: uuid.UUID | None = None) -> Envelope:
    """The envelope the door reads from the message's headers."""
    return Envelope.from_headers(sent(command, message_id).binary_mode_headers())
