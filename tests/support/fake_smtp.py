"""A stand-in for smtplib.SMTP / SMTP_SSL that records what the mailer does
(the `fake_smtp` fixture of tests/unit/conftest.py puts it in smtplib's place).
`failing` makes the next sends fail as a server would; `idle_closed` makes the
next NOOP find the session closed."""

from __future__ import annotations

import smtplib
from typing import Any


class FakeSmtp:
    offers_starttls = True
    instances: list[FakeSmtp]
    # What the next send_message calls raise, one per call, in order.
    failing: list[BaseException]

    def __init__(self, host: str, port: int, timeout: float, context: Any = None) -> None:
        self.calls: list[tuple[str, Any]] = [("connect", context)]
        self.idle_closed = False
        type(self).instances.append(self)

    def ehlo(self) -> None:
        self.calls.append(("ehlo", None))

    def has_extn(self, name: str) -> bool:
        return name == "starttls" and self.offers_starttls

    def starttls(self, context: Any = None) -> None:
        self.calls.append(("starttls", context))

    def login(self, user: str, password: str) -> None:
        self.calls.append(("login", (user, password)))

    def send_message(self, mail: Any) -> None:
        self.calls.append(("send", mail["To"]))
        if type(self).failing:
            raise type(self).failing.pop(0)

    def noop(self) -> tuple[int, bytes]:
        self.calls.append(("noop", None))
        if self.idle_closed:
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return 250, b"2.0.0 Ok"

    def quit(self) -> None:
        self.calls.append(("quit", None))

    def close(self) -> None:
        self.calls.append(("close", None))

    def names(self) -> list[str]:
        """The calls, without the socket's close that follows every end."""
        return [name for name, _ in self.calls if name != "close"]
