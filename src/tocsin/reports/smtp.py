"""Inbound email: an SMTP listener (aiosmtpd) that turns mail to the support address into user reports.

It runs on the app's own event loop (not aiosmtpd's threaded Controller), so a report is written
with the same database engine and alert pipeline as one from the web form.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import re
from email.message import EmailMessage, Message
from email.utils import getaddresses
from html.parser import HTMLParser

from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import ValidationError

from tocsin.core.errors import TocsinError
from tocsin.policy.models import Policy
from tocsin.reports import jobs, service
from tocsin.reports.schemas import MAX_DESCRIPTION, ReportCreate, clean_text, valid_email
from tocsin.reports.service import RateLimited
from tocsin.runtime import Runtime

log = logging.getLogger("tocsin.reports")

MAX_SUBJECT = 200
_BLOCK_TAGS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"})


def parse_listen(value: str) -> tuple[str, int]:
    """`127.0.0.1:2525` or `[::1]:2525` -> (host, port); ValueError otherwise."""
    host, sep, port = value.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:2525)")
    return host, int(port)


class _HtmlText(HTMLParser):
    """The text of an HTML-only message, one line per block; scripts and styles dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.parts).splitlines())
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _content(part: Message) -> str:
    try:
        value = part.get_content() if isinstance(part, EmailMessage) else part.get_payload()
    except (LookupError, ValueError, AssertionError):  # unknown charset, broken transfer encoding
        raw = part.get_payload(decode=True)
        value = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
    return value if isinstance(value, str) else ""


def message_text(message: EmailMessage) -> str:
    """The plain-text body (HTML turned to text when there is no plain part); attachments ignored."""
    body = message.get_body(preferencelist=("plain", "html"))
    if body is None:
        return ""
    text = _content(body)
    if body.get_content_type() == "text/html":
        parser = _HtmlText()
        parser.feed(text)
        text = parser.text()
    return text


def guess_component(policy: Policy, subject: str) -> str | None:
    """The one component the subject names (`Email not arriving` -> email); None if none or several."""
    found = set()
    for svc in policy.services:
        for component in svc.components:
            for word in {component.name, component.title}:
                if re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", subject, re.IGNORECASE):
                    found.add(component.name)
    return found.pop() if len(found) == 1 else None


def is_automatic(message: EmailMessage, envelope_sender: str) -> bool:
    """Bounces, auto-replies and list mail: answering them with reports could loop (RFC 3834)."""
    auto = str(message.get("auto-submitted", "no")).strip().lower()
    precedence = str(message.get("precedence", "")).strip().lower()
    return not envelope_sender or auto != "no" or precedence in ("bulk", "junk", "list")


class ReportMailbox:
    """The aiosmtpd handler: accepts mail for the support address only, and files each as a report."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.address = rt.settings.support_address.strip().lower()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.strip().lower() != self.address:
            return f"550 5.1.1 <{address[:254]}>: no such mailbox; user reports go to <{self.address}>"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "replace")
        sender = envelope.mail_from or ""
        sender = "" if sender == "<>" else sender  # the null sender of bounces
        peer = session.peer
        client = str(peer[0] if isinstance(peer, tuple) else peer or "unknown")
        try:
            message = email.message_from_bytes(data, policy=email.policy.default)
            if not isinstance(message, EmailMessage):  # always one, under the default policy
                return "550 5.6.0 The message could not be read"
            if is_automatic(message, sender):
                log.info("ignored automatic mail from <%s> (%s)", sender, client)
                return "250 OK: automatic mail is not taken as a report"
            subject = clean_text(" ".join(str(message.get("subject", "")).split()), MAX_SUBJECT)
            body = message_text(message)
            from_header = str(message.get("from", ""))
        except Exception:
            log.warning("unreadable mail from <%s> (%s)", sender, client, exc_info=True)
            return "550 5.6.0 The message could not be read"
        text = clean_text(f"{subject}\n\n{body}" if subject and body else subject or body, MAX_DESCRIPTION)
        if not text:
            return "550 5.6.0 The message has no subject and no text: nothing to report"
        named = [addr for _, addr in getaddresses([from_header]) if addr]
        contact = valid_email(named[0]) if named else None
        contact = contact or valid_email(sender)
        try:
            report = ReportCreate.model_validate(
                {"component": guess_component(self.rt.policy, subject), "description": text, "email": contact}
            )
        except ValidationError:
            log.warning("mail from <%s> (%s) is not a valid report", sender, client, exc_info=True)
            return "550 5.6.0 The message is not a report we can take"
        reporter = service.reporter_by_sender(contact or sender)
        try:
            row = await jobs.take(self.rt, report, channel="email", client=client, reporter=reporter)
        except RateLimited:
            return "450 4.7.1 Too many reports from this sender; try again later"
        except TocsinError as exc:
            return f"550 5.6.0 {exc.message[:200]}"
        except Exception:
            log.exception("could not store the report mailed by <%s>", sender)
            return "451 4.3.0 The report could not be stored; try again later"
        return f"250 OK: user report #{row.id} received"


async def listen(rt: Runtime, host: str, port: int) -> asyncio.Server:
    """Start the SMTP listener on the running loop; mail over `max_body_bytes` is refused (552)."""
    loop = asyncio.get_running_loop()
    handler = ReportMailbox(rt)
    # A fixed greeting name: aiosmtpd would otherwise resolve this host's FQDN on every connection.
    hostname = rt.settings.support_address.rpartition("@")[2] or "tocsin"

    def protocol() -> SMTP:
        return SMTP(
            handler,
            data_size_limit=rt.settings.max_body_bytes,
            enable_SMTPUTF8=True,
            hostname=hostname,
            ident="Tocsin user reports",
            loop=loop,
        )

    # Several `tocsin serve --workers` processes share the port, as they share the HTTP one.
    server = await loop.create_server(protocol, host, port, reuse_port=rt.settings.workers > 1 or None)
    log.info("taking user reports mailed to <%s> on %s:%d", rt.settings.support_address, host, port)
    return server


async def start(rt: Runtime) -> asyncio.Server | None:
    """The listener at `settings.smtp_listen`, or None when it is not configured."""
    if not rt.settings.smtp_listen:
        return None
    host, port = parse_listen(rt.settings.smtp_listen)
    return await listen(rt, host, port)
