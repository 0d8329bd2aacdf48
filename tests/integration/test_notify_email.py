"""Email to a real SMTP server (aiosmtpd) on 127.0.0.1: STARTTLS, AUTH, a dropped connection, a 550."""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
import subprocess
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tocsin.db.engine import Database
from tocsin.notify import service
from tocsin.notify.channels.email import EmailChannel, SmtpServer
from tocsin.notify.models import OutboxMessage
from tocsin.notify.sender import Sender
from tocsin.testing import FakeClock

ICS = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nSUMMARY:INC-1 status meeting\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"


class Mailbox:
    """An SMTP handler that keeps what it accepts; refuses one address; can drop one connection."""

    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, EmailMessage]] = []
        self.drop_next = False

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.drop_next:
            self.drop_next = False
            assert server.transport is not None
            server.transport.close()  # the connection dies mid-conversation
            return "421 going away"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope, parsed))
        return "250 Message accepted"


def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"tocsin", b"s3cret:/@")
    return AuthResult(success=ok, handled=False)  # not handled: the server answers 535 itself


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def smtp(mailbox: Mailbox, certificate: tuple[Path, Path]) -> Iterator[SmtpServer]:
    """A server that requires STARTTLS before AUTH, and AUTH before mail."""
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(*certificate)
    port = free_port()
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=port, tls_context=server_tls, require_starttls=True,
        authenticator=authenticate, auth_required=True,
    )  # fmt: skip
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, starttls=True, user="tocsin", password="s3cret:/@")
    finally:
        controller.stop()


def channel(server: SmtpServer, certificate: tuple[Path, Path]) -> EmailChannel:
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    return EmailChannel(server, "Tocsin <tocsin@haus.test>", timeout=10, ssl_context=trust)


async def queue(db: Database, clock: FakeClock, key: str, to: str, payload: dict[str, Any]) -> None:
    async with db.transaction() as session:
        await service.enqueue(
            session, clock.now(), channel="email", target=to, kind="page", key=key, payload=payload
        )


async def stored(db: Database, key: str) -> OutboxMessage:
    async with db.session() as session:
        found = await service.by_key(session, key)
    assert found is not None
    return found


def test_smtp_url() -> None:
    assert SmtpServer.from_url("smtp://u%40x:p%3Aw@mail.test:587?starttls=true") == SmtpServer(
        "mail.test", 587, starttls=True, user="u@x", password="p:w"
    )
    assert SmtpServer.from_url("smtps://mail.test") == SmtpServer("mail.test", 465, implicit_tls=True)
    assert SmtpServer.from_url("smtp://mail.test") == SmtpServer("mail.test", 25)
    with pytest.raises(ValueError, match="not an SMTP URL"):
        SmtpServer.from_url("http://mail.test")


async def test_starttls_auth_html_and_calendar_invite(
    db: Database, clock: FakeClock, mailbox: Mailbox, smtp: SmtpServer, certificate: tuple[Path, Path]
) -> None:
    payload = {
        "text": "INC-1 status meeting at 17:00",
        "subject": "[P1] INC-1 status meeting",
        "html": "<p>INC-1 status meeting at <b>17:00</b></p>",
        "attachments": [
            {"filename": "meeting.ics", "content_type": "text/calendar; method=REQUEST", "content": ICS}
        ],
        "headers": {
            "List-Unsubscribe": "<https://status.example/unsubscribe/abc>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "From": "forged@evil.example",
        },
    }
    await queue(db, clock, "mail-1", "ada@haus.test", payload)
    sender = Sender(db, clock, {"email": channel(smtp, certificate)})
    await sender.tick()
    sent = await stored(db, "mail-1")
    assert sent.status == "sent", sent.last_error
    ((envelope, mail),) = mailbox.messages
    assert envelope.mail_from == "tocsin@haus.test" and envelope.rcpt_tos == ["ada@haus.test"]
    assert mail["Subject"] == "[P1] INC-1 status meeting" and mail["To"] == "ada@haus.test"
    assert mail["List-Unsubscribe"] == "<https://status.example/unsubscribe/abc>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail.get_all("From") == ["Tocsin <tocsin@haus.test>"]  # a payload cannot add other headers
    assert mail["Message-ID"] == sent.result["message_id"]  # type: ignore[index]
    body = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert body is not None and body.get_content().strip() == "INC-1 status meeting at 17:00"
    assert html is not None and "<b>17:00</b>" in html.get_content()
    (invite,) = list(mail.iter_attachments())
    assert invite.get_content_type() == "text/calendar" and invite.get_param("method") == "REQUEST"
    assert invite.get_filename() == "meeting.ics" and "SUMMARY:INC-1 status meeting" in invite.get_content()


async def test_refused_mailbox_fails_without_retry(
    db: Database, clock: FakeClock, mailbox: Mailbox, smtp: SmtpServer, certificate: tuple[Path, Path]
) -> None:
    await queue(db, clock, "mail-550", "nobody@haus.test", {"text": "page"})
    await Sender(db, clock, {"email": channel(smtp, certificate)}).tick()
    failed = await stored(db, "mail-550")
    assert failed.status == "failed" and failed.attempts == 1
    assert failed.last_error == "recipient refused: 550 5.1.1 no such mailbox"
    assert mailbox.messages == []


async def test_wrong_password_fails_without_retry(
    db: Database, clock: FakeClock, mailbox: Mailbox, smtp: SmtpServer, certificate: tuple[Path, Path]
) -> None:
    wrong = SmtpServer(smtp.host, smtp.port, starttls=True, user="tocsin", password="guess")
    await queue(db, clock, "mail-auth", "ada@haus.test", {"text": "page"})
    await Sender(db, clock, {"email": channel(wrong, certificate)}).tick()
    failed = await stored(db, "mail-auth")
    assert failed.status == "failed" and failed.last_error is not None and " 535 " in f" {failed.last_error} "


async def test_untrusted_certificate_is_refused(
    db: Database, clock: FakeClock, mailbox: Mailbox, smtp: SmtpServer
) -> None:
    await queue(db, clock, "mail-tls", "ada@haus.test", {"text": "page"})
    strict = EmailChannel(smtp, "tocsin@haus.test", timeout=10)  # the system trust store only
    await Sender(db, clock, {"email": strict}).tick()
    failed = await stored(db, "mail-tls")
    assert failed.status == "failed" and failed.last_error is not None
    assert failed.last_error.startswith("SMTP server certificate refused")


async def test_dropped_connection_is_retried_and_delivered_once(
    db: Database, clock: FakeClock, mailbox: Mailbox, smtp: SmtpServer, certificate: tuple[Path, Path]
) -> None:
    mailbox.drop_next = True
    await queue(db, clock, "mail-drop", "ada@haus.test", {"text": "page"})
    sender = Sender(db, clock, {"email": channel(smtp, certificate)}, jitter=lambda: 0.0)
    await sender.tick()
    waiting = await stored(db, "mail-drop")
    assert waiting.status == "pending" and waiting.last_error is not None
    clock.advance(seconds=5)
    await sender.tick()
    clock.advance(hours=1)
    await sender.tick()
    assert (await stored(db, "mail-drop")).status == "sent"
    assert len(mailbox.messages) == 1


async def test_server_down_then_back_delivers_once(
    db: Database, clock: FakeClock, mailbox: Mailbox, certificate: tuple[Path, Path]
) -> None:
    port = free_port()
    server = SmtpServer("127.0.0.1", port)
    await queue(db, clock, "mail-down", "ada@haus.test", {"text": "page"})
    sender = Sender(db, clock, {"email": channel(server, certificate)}, jitter=lambda: 0.0)
    for _ in range(6):
        await sender.tick()
        clock.advance(minutes=10)
    assert (await stored(db, "mail-down")).status == "pending"
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        await sender.tick()
        clock.advance(hours=1)
        await sender.tick()
    finally:
        controller.stop()
    assert (await stored(db, "mail-down")).status == "sent"
    assert len(mailbox.messages) == 1
