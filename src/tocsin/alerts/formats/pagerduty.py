"""PagerDuty Events API v2 (`POST /v2/enqueue`): trigger, acknowledge and resolve by dedup_key."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from tocsin.alerts.formats.common import timestamp
from tocsin.alerts.signals import FormatError, Signal

SEVERITIES = ("critical", "error", "warning", "info")
ACTIONS = ("trigger", "acknowledge", "resolve")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any, name: str, limit: int, errors: list[str]) -> str:
    if _blank(value):
        errors.append(f"'{name}' is missing or blank")
        return ""
    if not isinstance(value, str):
        errors.append(f"'{name}' must be a string")
        return ""
    if len(value) > limit:
        errors.append(f"Length of '{name}' is too long (at most {limit} characters)")
    return value


def _links(value: Any, errors: list[str]) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 50:
        errors.append("'links' must be an array of at most 50 links")
        return []
    out = []
    for link in value:
        if not isinstance(link, dict) or not isinstance(link.get("href"), str):
            errors.append("'links' entries need an 'href' string")
            continue
        out.append({"href": link["href"][:2048], "text": str(link.get("text") or "")[:1024]})
    return out


def parse_event(body: Any, now: datetime) -> tuple[str, Signal]:
    """(routing_key, signal) from an event; FormatError carries PagerDuty-style messages."""
    if not isinstance(body, dict):
        raise FormatError(["Event object must be a JSON object"])
    errors: list[str] = []
    routing_key = body.get("routing_key")
    if _blank(routing_key) or not isinstance(routing_key, str):
        errors.append("'routing_key' is missing or blank")
    action = body.get("event_action")
    if action not in ACTIONS:
        errors.append("'event_action' is missing or invalid (must be one of: trigger, acknowledge, resolve)")
    dedup_key = body.get("dedup_key")
    if dedup_key is not None and (not isinstance(dedup_key, str) or len(dedup_key) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and _blank(dedup_key):
        errors.append("'dedup_key' is missing or blank")
    signal = Signal(action="trigger", dedup_key="")
    if action == "trigger":
        payload = body.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or blank")
            payload = {}
        summary = _text(payload.get("summary"), "payload.summary", 1024, errors)
        source = _text(payload.get("source"), "payload.source", 255, errors)
        severity = payload.get("severity")
        if severity not in SEVERITIES:
            errors.append(
                "'payload.severity' is missing or invalid (must be one of: critical, error, warning, info)"
            )
        labels = {"severity": str(severity), "source": source}
        for name in ("component", "group", "class"):
            value = payload.get(name)
            if value is not None:
                if not isinstance(value, str):
                    errors.append(f"'payload.{name}' must be a string")
                else:
                    labels[name] = value[:255]
        details = payload.get("custom_details")
        signal = Signal(
            action="trigger",
            dedup_key="",
            summary=summary[:1024],
            labels=labels,
            details=details
            if isinstance(details, dict)
            else ({} if details is None else {"details": details}),
            links=_links(body.get("links"), errors),
            source=source[:255],
            starts_at=timestamp(payload.get("timestamp"), "payload.timestamp", errors) or now,
        )
        images = body.get("images")
        if isinstance(images, list):
            signal.details = {**signal.details, "images": images[:50]}
    if errors:
        raise FormatError(errors)
    signal.action = action  # type: ignore[assignment]  # checked against ACTIONS above
    signal.dedup_key = dedup_key if isinstance(dedup_key, str) and dedup_key else secrets.token_hex(16)
    return str(routing_key), signal
