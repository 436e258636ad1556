"""E-mail over SMTP with the standard library's blocking client, run on a
bounded thread pool so that a slow mail server never blocks the event loop.

Each worker thread keeps its SMTP session open between mails (connect,
banner, EHLO, STARTTLS and AUTH once, not per mail): smtplib's client is not
thread-safe, so a session belongs to the thread that opened it. A session
idle for a while is checked with NOOP before it is used again (servers close
idle sessions), one is renewed after MAILS_PER_SESSION mails (servers cap
them), and one whose mail failed in any way is dropped: a fresh session is
cheaper than finding out what state the old one is in.

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
import contextlib
import smtplib
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email import charset
from email.message import Message
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


# Mail text in UTF-8, quoted-printable: an ASCII body stays readable as it is,
# and headers with other characters are encoded words (RFC 2047).
UTF8_QP = charset.Charset("utf-8")
UTF8_QP.header_encoding = UTF8_QP.body_encoding = charset.QP

# A session unused for longer than this is asked NOOP before its next mail.
CHECK_IDLE_AFTER_S = 5.0
# Servers may cap the mails of one session; renewing every 100 mails costs
# one connect per 100. (A lower cap answers 4xx: that mail is retried, its
# session dropped.)
MAILS_PER_SESSION = 100


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
        self._local = threading.local()
        # Every open session, whichever thread holds it, for close().
        self._sessions: set[_Session] = set()
        self._sessions_lock = threading.Lock()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, set()
        for session in sessions:
            session.end()

    def compose(self, message_id: str, command: SendNotification) -> Message:
        """The mail, built with the email package's compat32 API (Message):
        the same headers as EmailMessage would give, at about a sixth of its
        CPU (bench/README.md: 0.19 against 1.25 ms a mail to compose and
        flatten), since it does not parse every header it is given."""
        mail = Message()
        # Content-Type text/plain, MIME-Version and the transfer encoding.
        mail.set_payload(command.body, UTF8_QP)
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
        return mail

    def _connect(self) -> smtplib.SMTP:
        if self.security.mode == "tls":
            return smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout_s, context=self.security.context
            )
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)

    def _open(self) -> smtplib.SMTP:
        smtp = self._connect()
        try:
            if self.security.mode == "starttls":
                smtp.ehlo()
                _require_starttls(smtp, self.host, self.port)
                smtp.starttls(context=self.security.context)
                smtp.ehlo()
            if self.security.username:
                smtp.login(self.security.username, self.security.password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _session(self) -> _Session:
        """This thread's session: kept, checked, or opened anew."""
        session: _Session | None = getattr(self._local, "session", None)
        if session is not None and not session.reusable():
            self._drop(session)
            session = None
        if session is None:
            session = _Session(self._open())
            self._local.session = session
            with self._sessions_lock:
                self._sessions.add(session)
        return session

    def _drop(self, session: _Session) -> None:
        self._local.session = None
        with self._sessions_lock:
            self._sessions.discard(session)
        session.end()

    def _send_blocking(self, mail: Message) -> None:
        session = self._session()
        try:
            session.smtp.send_message(mail)
        except BaseException:
            self._drop(session)
            raise
        session.mails += 1
        session.used_at = time.monotonic()

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


def _require_starttls(smtp: smtplib.SMTP, host: str, port: int) -> None:
    if not smtp.has_extn("starttls"):
        raise StartTlsUnavailableError(
            f"{host}:{port} does not offer STARTTLS; not sending in clear"
        )


class _Session:
    """One open SMTP session of one worker thread."""

    def __init__(self, smtp: smtplib.SMTP) -> None:
        self.smtp = smtp
        self.mails = 0
        self.used_at = time.monotonic()

    def reusable(self) -> bool:
        if self.mails >= MAILS_PER_SESSION:
            return False
        if time.monotonic() - self.used_at < CHECK_IDLE_AFTER_S:
            return True
        try:
            return self.smtp.noop()[0] == 250
        except (smtplib.SMTPException, OSError):
            return False

    def end(self) -> None:
        """QUIT if the server still listens; the socket is closed either way."""
        with contextlib.suppress(smtplib.SMTPException, OSError):
            self.smtp.quit()
        self.smtp.close()
