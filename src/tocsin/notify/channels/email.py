"""Email over SMTP (the standard library's smtplib, run in a thread).

Configured by one URL: `smtp://user:password@host:587?starttls=true` (plain SMTP, upgraded with
STARTTLS when `starttls=true`), or `smtps://user:password@host:465` (TLS from the first byte).
Without user and password no AUTH is attempted. Certificates are checked against the system's trust
store (point `SSL_CERT_FILE` at a private CA's bundle).

Errors: a dropped connection, a timeout or a 4xx answer is retried; a 5xx answer (no such mailbox,
authentication refused) is not.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tocsin.notify.channels.base import DeliveryError
from tocsin.notify.models import OutboxMessage

_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    implicit_tls: bool = False
    starttls: bool = False
    user: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        """Read `smtp://[user:pass@]host[:port][?starttls=true]` or `smtps://...`; ValueError if not."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"{url!r} is not an SMTP URL (smtp://user:pass@host:587?starttls=true)")
        implicit = parts.scheme == "smtps"
        query = parse_qs(parts.query)
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit else 25),
            implicit_tls=implicit,
            starttls=not implicit and query.get("starttls", ["false"])[0].lower() in _TRUE,
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


# Headers a payload may add (`headers`: {name: value}); others are ignored so no payload can forge From.
EXTRA_HEADERS = {"list-unsubscribe": "List-Unsubscribe", "list-unsubscribe-post": "List-Unsubscribe-Post"}


def _message_id(key: str) -> str:
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@tocsin>"


def build(message: OutboxMessage, sender: str) -> EmailMessage:
    """The email for an outbox message: text, an optional HTML alternative, attachments."""
    payload = message.payload
    text: str = payload["text"]
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = message.target
    subject = payload.get("subject") or (text.strip().splitlines() or ["Tocsin"])[0]
    mail["Subject"] = str(subject)[:200]
    mail["Date"] = formatdate(message.created_at.timestamp(), usegmt=True)
    # Stable across retries, so a mail server or client that saw it once drops a repeat.
    mail["Message-ID"] = _message_id(message.idempotency_key)
    if message.thread:
        mail["References"] = _message_id(f"thread:{message.thread}")
    mail["Auto-Submitted"] = "auto-generated"
    for name, value in (payload.get("headers") or {}).items():
        if str(name).lower() in EXTRA_HEADERS and "\n" not in str(value) and "\r" not in str(value):
            mail[EXTRA_HEADERS[str(name).lower()]] = str(value)
    mail.set_content(text)
    if payload.get("html"):
        mail.add_alternative(str(payload["html"]), subtype="html")
    for attachment in payload.get("attachments") or []:
        content_type, *params = (p.strip() for p in str(attachment.get("content_type", "")).split(";"))
        maintype, _, subtype = content_type.partition("/")
        if not maintype or not subtype:
            maintype, subtype = "application", "octet-stream"
        filename = str(attachment.get("filename") or "attachment")
        extra = dict(p.split("=", 1) for p in params if "=" in p)
        content = str(attachment.get("content", ""))
        if maintype == "text":
            mail.add_attachment(content, subtype=subtype, filename=filename, params=extra)
        else:
            mail.add_attachment(content.encode(), maintype=maintype, subtype=subtype, filename=filename)
    return mail


def _failure(error: Exception) -> DeliveryError:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        code, reason = next(iter(error.recipients.values()))
        return DeliveryError(
            f"recipient refused: {code} {reason.decode(errors='replace')}", retryable=code < 500
        )
    if isinstance(error, smtplib.SMTPResponseException):
        said: bytes | str = error.smtp_error
        text = said.decode(errors="replace") if isinstance(said, bytes) else str(said)
        code = error.smtp_code
        return DeliveryError(f"SMTP server answered {code} {text}", retryable=not 500 <= code < 600)
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return DeliveryError(f"SMTP server does not support it: {error}", retryable=False)
    if isinstance(error, ssl.SSLCertVerificationError):
        return DeliveryError(f"SMTP server certificate refused: {error.verify_message}", retryable=False)
    if isinstance(error, TimeoutError):
        return DeliveryError("SMTP server did not answer in time", retryable=True)
    return DeliveryError(f"SMTP connection failed: {error or type(error).__name__}", retryable=True)


class EmailChannel:
    name = "email"

    def __init__(
        self,
        server: SmtpServer | str,
        sender: str,
        *,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.server = SmtpServer.from_url(server) if isinstance(server, str) else server
        self.sender = sender
        self.timeout = timeout
        self.ssl_context = ssl_context or ssl.create_default_context()

    async def send(self, message: OutboxMessage, previous: dict[str, Any] | None) -> dict[str, Any]:
        mail = build(message, self.sender)
        try:
            await asyncio.to_thread(self._deliver, mail, message.target)
        except (smtplib.SMTPException, OSError) as error:
            raise _failure(error) from error
        return {"message_id": mail["Message-ID"]}

    def _deliver(self, mail: EmailMessage, recipient: str) -> None:
        server = self.server
        client: smtplib.SMTP
        if server.implicit_tls:
            client = smtplib.SMTP_SSL(
                server.host, server.port, timeout=self.timeout, context=self.ssl_context
            )
        else:
            client = smtplib.SMTP(server.host, server.port, timeout=self.timeout)
        with client:
            client.ehlo()
            if server.starttls:
                client.starttls(context=self.ssl_context)
                client.ehlo()
            if server.user and server.password:
                client.login(server.user, server.password)
            client.send_message(mail, from_addr=self.sender, to_addrs=[recipient])
