"""User reports by email: smtplib talking to the real listener on 127.0.0.1, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import smtplib
import socket
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from tocsin.app import build_runtime, create_app
from tocsin.config import Settings
from tocsin.db.engine import Database
from tocsin.reports import smtp
from tocsin.runtime import Runtime
from tocsin.testing import FakeClock, bearer

SUPPORT = "support@haus.test"


@pytest.fixture
def rt(db: Database, clock: FakeClock) -> Runtime:
    settings = Settings(database_url=db.url, support_address=SUPPORT, max_body_bytes=64 * 1024)
    return build_runtime(settings, clock=clock, db=db)


@pytest.fixture
async def port(rt: Runtime) -> AsyncIterator[int]:
    server = await smtp.listen(rt, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


def mail(
    subject: str, body: str, sender: str = "Ada Lovelace <ada@example.com>", **headers: str
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = SUPPORT
    message["Subject"] = subject
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


def send(port: int, message: EmailMessage, *, sender: str = "ada@example.com", to: str = SUPPORT) -> Any:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        return client.send_message(message, from_addr=sender, to_addrs=[to])


async def reports(client: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await client.get("/api/v1/reports", headers=bearer(token))).json()["items"]
    return items


async def test_mail_to_support_becomes_a_report(
    port: int, client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    message = mail("Email not arriving", "I asked for a magic link\nan hour ago.\n\nStill nothing.")
    refused = await asyncio.to_thread(send, port, message)
    assert refused == {}
    item = (await reports(client, tokens["responder"]))[0]
    assert item["channel"] == "email" and item["client"] == "127.0.0.1"
    assert item["email"] == "ada@example.com"
    assert item["component"] == "email"  # the subject names one component
    assert (
        item["description"]
        == "Email not arriving\n\nI asked for a magic link\nan hour ago.\n\nStill nothing."
    )


async def test_other_recipients_are_refused(
    port: int, client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    message = mail("hello", "is this the sales team?")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await asyncio.to_thread(send, port, message, to="sales@haus.test")
    code, reason = refused.value.recipients["sales@haus.test"]
    assert code == 550 and SUPPORT.encode() in reason
    assert await reports(client, tokens["responder"]) == []


async def test_oversized_mail_is_refused(
    port: int, client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    message = mail("Screenshot attached", "see attachment")
    message.add_attachment(b"\x89PNG" + b"\0" * 100_000, maintype="image", subtype="png", filename="a.png")
    with pytest.raises(smtplib.SMTPSenderRefused) as announced:  # SIZE= in MAIL FROM, refused at once
        await asyncio.to_thread(send, port, message)
    assert announced.value.smtp_code == 552

    def without_size() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.helo("client.test")  # plain HELO: no SIZE extension, the limit bites during DATA
            client.sendmail("ada@example.com", [SUPPORT], message.as_string())

    with pytest.raises(smtplib.SMTPDataError) as streamed:
        await asyncio.to_thread(without_size)
    assert streamed.value.smtp_code == 552
    assert await reports(client, tokens["responder"]) == []


async def test_html_only_mail_and_control_characters(
    port: int, client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    message = EmailMessage()
    message["From"] = "not an address"
    message["Subject"] = "Broken\x07 page"
    message.set_content(
        "<html><style>p{color:red}</style><body><p>The <b>API</b> returns 500</p><p>since 9:00</p>"
        "<script>alert(1)</script></body></html>",
        subtype="html",
    )
    assert await asyncio.to_thread(send, port, message, sender="grace@example.com") == {}
    item = (await reports(client, tokens["responder"]))[0]
    assert item["description"] == "Broken page\n\nThe API returns 500\nsince 9:00"
    assert item["email"] == "grace@example.com"  # From was unusable: the envelope sender
    assert item["component"] is None  # "API" is in the body, not the subject


async def test_bounces_and_auto_replies_are_not_reports(
    port: int, client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    assert await asyncio.to_thread(send, port, mail("Undeliverable", "bounce"), sender="") == {}
    vacation = mail("Out of office", "back Monday", Auto_Submitted="auto-replied")
    assert await asyncio.to_thread(send, port, vacation) == {}
    assert await reports(client, tokens["responder"]) == []


async def test_a_sender_is_rate_limited_with_a_temporary_failure(
    port: int, client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    for n in range(5):
        assert await asyncio.to_thread(send, port, mail(f"report {n}", "down")) == {}
    with pytest.raises(smtplib.SMTPDataError) as limited:
        await asyncio.to_thread(send, port, mail("report 6", "down"))
    assert limited.value.smtp_code == 450  # the sending server tries again later
    assert len(await reports(client, tokens["responder"])) == 5


async def test_mail_from_three_people_raises_an_alert(
    port: int, client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    for name in ["ada", "grace", "edsger"]:
        message = mail("Cannot sign in", "Authentication fails", sender=f"{name}@example.com")
        await asyncio.to_thread(send, port, message, sender=f"{name}@example.com")
    found = (await client.get("/api/v1/incidents", headers=bearer(tokens["viewer"]))).json()["items"]
    assert found == []  # "sign in" names no component: no burst to count
    for name in ["ada", "grace", "edsger"]:
        message = mail("[Authentication] magic links expired", "again", sender=f"{name}@example.com")
        await asyncio.to_thread(send, port, message, sender=f"{name}@example.com")
    found = (await client.get("/api/v1/incidents", headers=bearer(tokens["viewer"]))).json()["items"]
    assert [(i["title"], i["source"]) for i in found] == [
        ("3 user reports about Authentication in 15m", "user_report")
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_the_app_starts_the_listener_when_configured(
    db: Database, clock: FakeClock, tokens: dict[str, str]
) -> None:
    port = free_port()
    settings = Settings(
        database_url=db.url, support_address=SUPPORT, smtp_listen=f"127.0.0.1:{port}", background=False
    )
    app = create_app(runtime=build_runtime(settings, clock=clock, db=db))
    async with app.router.lifespan_context(app):
        assert await asyncio.to_thread(send, port, mail("Site down", "nothing loads")) == {}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            assert (await reports(c, tokens["responder"]))[0]["description"] == "Site down\n\nnothing loads"
    with pytest.raises(OSError):  # closed with the app
        await asyncio.to_thread(send, port, mail("Site down", "nothing loads"))


@pytest.mark.parametrize("value", ["2525", "localhost:", ":25", "host:99999", "host:\uff12\uff15"])
def test_listen_address_must_be_host_and_port(value: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        smtp.parse_listen(value)
    assert smtp.parse_listen("[::1]:2525") == ("::1", 2525)
