"""Commands to the notification service, on the RabbitMQ queue ``notification.send``."""

from __future__ import annotations

import enum
from typing import ClassVar

from pydantic import Field

from catalogue.topology import NOTIFICATION_SEND
from messaging.envelope import Contract, MessageContext, OutgoingMessage


class NotificationKind(enum.StrEnum):
    SECURITY = "security"
    ORDER = "order"
    POINTS = "points"
    MARKETING = "marketing"


# RabbitMQ message priority per kind: security and order mail first.
PRIORITY: dict[NotificationKind, int] = {
    NotificationKind.SECURITY: 9,
    NotificationKind.ORDER: 7,
    NotificationKind.POINTS: 5,
    NotificationKind.MARKETING: 1,
}


class SendNotification(Contract):
    """Do this: send one e-mail. Exactly one receiver, acked when delivered."""

    TYPE: ClassVar[str] = "notification.send"
    SCHEMA_VERSION: ClassVar[int] = 1

    kind: NotificationKind
    recipient: str = Field(min_length=3)
    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(max_length=20_000)


def send_notification(
    mail: SendNotification, subject: str, source: str, context: MessageContext
) -> OutgoingMessage:
    """The command as a message to `notification.send` (RabbitMQ, exactly one
    receiver) at its kind's priority; `subject` is what it is about (an order,
    a customer)."""
    return OutgoingMessage(
        mail, NOTIFICATION_SEND, subject, source, context, priority=PRIORITY[mail.kind]
    )
