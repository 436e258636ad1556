"""E-mail over SMTP with the standard library's blocking client, run on a
bounded thread pool so that a slow mail server never blocks the event loop.

Work handed to another thread does not raise in the caller by itself: an
exception stays inside the thread's future until someone awaits it. Here
every send is awaited, and every exception it carries is caught, classified
(temporary: retry later; permanent: park the message), counted in
`notification_smtp_failures_total` and handed back to the caller as one of
two typed errors. Nothing fails silently.

With SMTP_SECURITY=starttls a server that does not offer STARTTLS gets no
mail (a temporary failure: the message is retried, then parked), and neither
does one whose certificate does not verify: nothing is sent in clear that
was meant to be encrypted.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Protocol

from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import Counter, Histogram

from catalogue.contracts.notifications import SendNotification
from messaging.connections import tls_context
from notification_service.settings import NotificationServiceSettings, SmtpSecurityMode

TRACER = trace.get_tracer(__name__)
SMTP_FAILURES = Counter(
    "notification_smtp_failures_total",
    "Failed SMTP deliveries, by class (temporary or permanent).",
    ["kind"],
)
SMTP_DURATION = Histogram(
    "notification_smtp_send_seconds",
    "Duration of one SMTP delivery, successful or not.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class DeliveryError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TemporaryDeliveryError(DeliveryError):
    """Worth retrying later: the server is down, busy, or answered 4xx."""


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help: the server answered 5xx (e.g. recipient refused)."""


class Mailer(Protocol):
    """What the service layer sends mail with (`SmtpMailer`): it returns once
    the mail server accepted the mail, or raises TemporaryDeliveryError or
    PermanentDeliveryError. The mail's Message-ID is `message_id`'s."""

    async def send(self, message_id: str, command: SendNotification) -> None: ...


class StartTlsUnavailableError(smtplib.SMTPException):
    """STARTTLS is required and the server does not offer it."""


@dataclass(frozen=True)
class SmtpSecurity:
    """How to talk to the mail server: `mode` none, starttls or tls (implicit,
    SMTPS); AUTH when `username` is given."""

    mode: SmtpSecurityMode = "none"
    username: str = ""
    password: str = ""
    context: ssl.SSLContext | None = None


def smtp_security(settings: NotificationServiceSettings) -> SmtpSecurity:
    return SmtpSecurity(
        mode=settings.smtp_security,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value(),
        context=None if settings.smtp_security == "none" else tls_context(settings.smtp_ssl_cafile),
    )


class SmtpMailer:
    def __init__(
        self,
        host: str,
        port: int,
        timeout_s: float,
        sender: str,
        workers: int,
        security: SmtpSecurity | None = None,
    ) -> None:
        self.host, self.port, self.timeout_s, self.sender = host, port, timeout_s, sender
        self.security = security or SmtpSecurity()
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="smtp")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def compose(self, message_id: str, command: SendNotification) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = command.recipient
        mail["Subject"] = command.subject
        mail["Date"] = formatdate(localtime=False)
        # The command's id, and only it: a resend after a crash between the SMTP
        # server's acceptance and our record carries the same Message-ID, which
        # mail stores and clients use to show a duplicate once.
        mail["Message-ID"] = f"<{message_id}@notifications.local>"
        mail["X-Notification-Id"] = message_id
        mail["X-Notification-Kind"] = command.kind.value
        mail.set_content(command.body)
        return mail

    def _connect(self) -> smtplib.SMTP:
        if self.security.mode == "tls":
            return smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout_s, context=self.security.context
            )
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)

    def _send_blocking(self, mail: EmailMessage) -> None:
        with self._connect() as smtp:
            if self.security.mode == "starttls":
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    raise StartTlsUnavailableError(
                        f"{self.host}:{self.port} does not offer STARTTLS; not sending in clear"
                    )
                smtp.starttls(context=self.security.context)
                smtp.ehlo()
            if self.security.username:
                smtp.login(self.security.username, self.security.password)
            smtp.send_message(mail)

    async def send(self, message_id: str, command: SendNotification) -> None:
        mail = self.compose(message_id, command)
        loop = asyncio.get_running_loop()
        # The last hop of an order's trace: a client span around the SMTP exchange
        # (opened here, on the event loop, so it needs no context in the thread).
        with (
            TRACER.start_as_current_span(
                "smtp send",
                kind=SpanKind.CLIENT,
                attributes={
                    "server.address": self.host,
                    "server.port": self.port,
                    "notification.kind": command.kind.value,
                    "messaging.message.id": message_id,
                },
            ) as span,
            SMTP_DURATION.time(),
        ):
            try:
                # Awaiting the future is what brings the thread's exception here.
                await loop.run_in_executor(self.pool, self._send_blocking, mail)
            except smtplib.SMTPAuthenticationError as exc:
                # The mail server refuses our login: every message would fail
                # alike until the credentials are fixed, none is at fault.
                error: DeliveryError = TemporaryDeliveryError(
                    f"SMTP login refused: {exc.smtp_code} {exc.smtp_error!r}"
                )
            except smtplib.SMTPRecipientsRefused as exc:
                codes = [code for code, _ in exc.recipients.values()]
                error = (
                    PermanentDeliveryError(f"recipient refused: {exc.recipients}")
                    if all(code >= 500 for code in codes)
                    else TemporaryDeliveryError(f"recipient deferred: {exc.recipients}")
                )
            except smtplib.SMTPResponseException as exc:
                text = f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"
                error = (
                    PermanentDeliveryError(text)
                    if 500 <= exc.smtp_code < 600
                    else TemporaryDeliveryError(text)
                )
            except (TimeoutError, smtplib.SMTPException, OSError) as exc:
                error = TemporaryDeliveryError(f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # noqa: BLE001 - anything else from the thread is still a failed send
                error = TemporaryDeliveryError(f"unexpected {type(exc).__name__}: {exc}")
            else:
                return
            span.set_status(StatusCode.ERROR, str(error))
        SMTP_FAILURES.labels(
            "permanent" if isinstance(error, PermanentDeliveryError) else "temporary"
        ).inc()
        raise error
