"""Alertmanager: its webhook (payload version 4) and its API v2 `POST /api/v2/alerts` (what Prometheus sends)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tocsin.alerts.formats.common import require_object, string_map, timestamp
from tocsin.alerts.signals import FormatError, Signal, label_fingerprint

MAX_ALERTS = 10_000
# Alertmanager's resolve_timeout: an alert posted without endsAt expires this long after its last receipt.
RESOLVE_TIMEOUT = timedelta(minutes=5)


def _summary(labels: dict[str, str], annotations: dict[str, str]) -> str:
    text = annotations.get("summary") or annotations.get("description") or labels.get("alertname") or "alert"
    return text[:1024]


def parse_webhook(body: Any, now: datetime) -> list[Signal]:
    """An Alertmanager webhook notification: each alert tracked by fingerprint, grouped by groupKey."""
    data = require_object(body)
    errors: list[str] = []
    version = data.get("version")
    if version != "4":
        errors.append(f'version must be "4" (got {version!r})')
    alerts = data.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise FormatError([*errors, "alerts must be a non-empty array"])
    if len(alerts) > MAX_ALERTS:
        raise FormatError([f"{len(alerts)} alerts in one request; at most {MAX_ALERTS}"])
    group_key = data.get("groupKey")
    if not isinstance(group_key, str) or not group_key:
        errors.append("groupKey must be a non-empty string")
    common = string_map(data.get("commonLabels"), "commonLabels", errors)
    # The alerts Alertmanager left out of this notification (the receiver's max_alerts): kept with the
    # alerts it did send, so the incident shows that the group is bigger than what arrived.
    truncated = data.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        errors.append("truncatedAlerts must be a non-negative integer")
        truncated = 0
    details = {"truncatedAlerts": truncated} if truncated else {}
    signals: list[Signal] = []
    for i, alert in enumerate(alerts):
        where = f"alerts[{i}]"
        if not isinstance(alert, dict):
            errors.append(f"{where} must be an object")
            continue
        labels = string_map(alert.get("labels"), f"{where}.labels", errors) or dict(common)
        annotations = string_map(alert.get("annotations"), f"{where}.annotations", errors)
        status = alert.get("status")
        if status not in ("firing", "resolved"):
            errors.append(f'{where}.status must be "firing" or "resolved"')
            continue
        fingerprint = alert.get("fingerprint")
        if fingerprint is not None and (not isinstance(fingerprint, str) or not 0 < len(fingerprint) <= 64):
            errors.append(f"{where}.fingerprint must be a string of at most 64 characters")
            continue
        starts = timestamp(alert.get("startsAt"), f"{where}.startsAt", errors)
        ends = timestamp(alert.get("endsAt"), f"{where}.endsAt", errors)
        url = alert.get("generatorURL")
        links = [{"href": url, "text": "source"}] if isinstance(url, str) and url else []
        signals.append(
            Signal(
                action="resolve" if status == "resolved" else "trigger",
                dedup_key=fingerprint or label_fingerprint(labels),
                summary=_summary(labels, annotations),
                labels=labels,
                annotations=annotations,
                details=dict(details),
                links=links,
                source=str(data.get("externalURL") or "alertmanager")[:255],
                starts_at=starts or now,
                ends_at=ends,
                group_key=str(group_key),
            )
        )
    if errors:
        raise FormatError(errors)
    return signals


def _time(value: Any, where: str, errors: list[str], seen: dict[str, datetime | None]) -> datetime | None:
    """`timestamp`, parsing each distinct text once per request."""
    if not isinstance(value, str):
        return timestamp(value, where, errors)
    if value not in seen:
        before = len(errors)
        parsed = timestamp(value, where, errors)
        if len(errors) > before:
            return None  # not kept: each alert with this text names its own error
        seen[value] = parsed
    return seen[value]


def parse_v2_alerts(body: Any, now: datetime) -> list[Signal]:
    """Alertmanager API v2 postable alerts; an alert whose endsAt has passed is resolved."""
    if not isinstance(body, list):
        raise FormatError(["the body must be a JSON array of alerts"])
    if len(body) > MAX_ALERTS:
        raise FormatError([f"{len(body)} alerts in one request; at most {MAX_ALERTS}"])
    errors: list[str] = []
    signals: list[Signal] = []
    times: dict[str, datetime | None] = {}  # Prometheus sends one startsAt and endsAt for many alerts
    for i, alert in enumerate(body):
        where = f"[{i}]"
        if not isinstance(alert, dict):
            errors.append(f"{where} must be an object")
            continue
        labels = string_map(alert.get("labels"), f"{where}.labels", errors)
        if not labels:
            errors.append("at least one label pair required")
            continue
        annotations = string_map(alert.get("annotations"), f"{where}.annotations", errors)
        starts = _time(alert.get("startsAt"), f"{where}.startsAt", errors, times) or now
        ends = _time(alert.get("endsAt"), f"{where}.endsAt", errors, times)
        if ends is not None and ends < starts:
            errors.append(f"{where}: start time must be before end time")
            continue
        url = alert.get("generatorURL")
        resolved = ends is not None and ends <= now
        signals.append(
            Signal(
                action="resolve" if resolved else "trigger",
                dedup_key=label_fingerprint(labels),
                summary=_summary(labels, annotations),
                labels=labels,
                annotations=annotations,
                links=[{"href": url, "text": "source"}] if isinstance(url, str) and url else [],
                source="prometheus",
                starts_at=starts,
                ends_at=ends if ends is not None else now + RESOLVE_TIMEOUT,
            )
        )
    if errors:
        raise FormatError(errors)
    return signals
