"""Tocsin's own generic JSON webhook: `{summary, severity, dedup_key, status, source, details, links}`."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from tocsin.alerts.formats.common import require_object, string_map
from tocsin.alerts.signals import FormatError, Signal

FIELDS = {"summary", "severity", "dedup_key", "status", "source", "details", "links", "labels", "component"}


def parse(body: Any, now: datetime) -> Signal:
    data = require_object(body)
    errors: list[str] = []
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        errors.append(f"unknown field(s): {', '.join(unknown)[:200]}")
    summary = data.get("summary")
    status = data.get("status", "firing")
    if status not in ("firing", "resolved"):
        errors.append('status must be "firing" or "resolved"')
    dedup_key = data.get("dedup_key")
    if dedup_key is not None and (not isinstance(dedup_key, str) or not 0 < len(dedup_key) <= 255):
        errors.append("dedup_key must be a string of 1 to 255 characters")
    if status == "resolved" and dedup_key is None:
        errors.append("dedup_key is required to resolve")
    if status == "firing" and (not isinstance(summary, str) or not summary.strip() or len(summary) > 1024):
        errors.append("summary must be a non-blank string of at most 1024 characters")
    severity = data.get("severity")
    if severity is not None and (not isinstance(severity, str) or len(severity) > 32):
        errors.append("severity must be a short string such as critical, error, warning, info or P1")
    source = data.get("source", "")
    if not isinstance(source, str) or len(source) > 255:
        errors.append("source must be a string of at most 255 characters")
    details = data.get("details", {})
    if not isinstance(details, dict):
        errors.append("details must be an object")
    links = data.get("links", [])
    if not isinstance(links, list) or not all(
        isinstance(x, dict) and isinstance(x.get("href"), str) for x in links
    ):
        errors.append("links must be an array of {href, text}")
    labels = string_map(data.get("labels"), "labels", errors)
    component = data.get("component")
    if component is not None and not isinstance(component, str):
        errors.append("component must be a string")
    if errors:
        raise FormatError(errors)
    if isinstance(severity, str):
        labels["severity"] = severity
    if isinstance(component, str):
        labels["component"] = component
    return Signal(
        action="resolve" if status == "resolved" else "trigger",
        dedup_key=dedup_key or secrets.token_hex(16),
        summary=(summary or "")[:1024] if isinstance(summary, str) else "",
        labels=labels,
        details=details,
        links=[{"href": x["href"][:2048], "text": str(x.get("text") or "")[:1024]} for x in links[:50]],
        source=source,
        starts_at=now,
    )
