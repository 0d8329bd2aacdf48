"""What subscribers receive: the confirmation mail, update mails and the Statuspage webhook body."""

from __future__ import annotations

from html import escape
from typing import Any

from tocsin.statuspage.snapshot import IncidentView, UpdateView
from tocsin.statuspage.vocab import LABELS, ComponentStatus


def _headers(unsubscribe: str) -> dict[str, str]:
    # RFC 8058 one-click unsubscribe: mail clients POST "List-Unsubscribe=One-Click" to the link.
    return {"List-Unsubscribe": f"<{unsubscribe}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def _html(paragraphs: list[str], links: list[tuple[str, str]]) -> str:
    body = "".join(f"<p>{escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)
    body += "".join(f'<p><a href="{escape(href)}">{escape(text)}</a></p>' for text, href in links)
    return f'<!doctype html><html><body style="font-family: sans-serif">{body}</body></html>'


def confirmation(organization: str, page: str, confirm: str, unsubscribe: str) -> dict[str, Any]:
    """The double opt-in mail: nothing more is sent until its link is followed."""
    intro = (
        f"Someone (hopefully you) asked to receive {organization} status updates by email at this address."
    )
    ask = "Confirm the subscription by opening this link:"
    ignore = "If it was not you, ignore this mail: without confirmation you will receive nothing more."
    return {
        "subject": f"Confirm your subscription to {organization} status updates",
        "text": f"{intro}\n\n{ask}\n{confirm}\n\n{ignore}\n\nStatus page: {page}\n",
        "html": _html([intro, ignore], [("Confirm subscription", confirm), ("Status page", page)]),
        "headers": _headers(unsubscribe),
    }


def _affected(update: UpdateView) -> list[str]:
    return [
        f"{a['name']}: {LABELS[ComponentStatus(a['new_status'])]}"
        for a in update.affected
        if "new_status" in a
    ]


def update_mail(
    organization: str, item: IncidentView, update: UpdateView, link: str, unsubscribe: str
) -> dict[str, Any]:
    """One update of an incident or a maintenance, as a mail with a one-click unsubscribe."""
    state = update.status.replace("_", " ").capitalize()
    affected = _affected(update)
    lines = [f"{item.name}", f"{state}: {update.body}"]
    if affected:
        lines.append("Components:\n" + "\n".join(f"- {a}" for a in affected))
    text = "\n\n".join(lines) + f"\n\nDetails: {link}\n\nUnsubscribe: {unsubscribe}\n"
    return {
        "subject": f"[{organization}] {item.name}: {state}",
        "text": text,
        "html": _html(lines, [("Details", link), ("Unsubscribe", unsubscribe)]),
        "headers": _headers(unsubscribe),
    }
