"""Sentry webhooks (`POST /api/v1/integrations/sentry`): error events, counted per project for spikes.

Understood: the integration platform's issue alert (`Sentry-Hook-Resource: event_alert`, action
`triggered`, the event in `data.event`) and error (`error`, action `created`, the event in
`data.error`) webhooks, and the legacy webhook plugin (`project`, `level`, `message`, `event` at the
top). Other resources Sentry sends to the same URL (`issue`, `metric_alert`, `installation`, ...)
carry no new event and count nothing.

With `TOCSIN_SENTRY_CLIENT_SECRET` set (the integration's client secret in Sentry), a webhook counts
only when its `Sentry-Hook-Signature` header is the hex HMAC-SHA256 of the raw body with that secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from tocsin.alerts.formats.common import require_object
from tocsin.alerts.signals import FormatError

EVENT_RESOURCES = {"event_alert": ("event", "triggered"), "error": ("error", "created")}
# /api/0/projects/{organization}/{project}/events/{id}/: the only place an event names its project slug
_PROJECT_IN_URL = re.compile(r"/projects/[^/]+/([^/]+)/events/")


@dataclass(frozen=True, slots=True)
class SentryEvent:
    project: str  # the project's slug when the payload gives it, else its numeric id
    project_id: str | None
    title: str
    level: str
    issue_id: str | None
    url: str


def signed(secret: str, body: bytes, signature: str) -> bool:
    """True when `signature` (Sentry-Hook-Signature) is the HMAC-SHA256 of `body` keyed by `secret`."""
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


def _text(value: Any, limit: int = 500) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value) == "":
        return None
    return str(value)[:100]


def _platform_event(event: Any, where: str) -> SentryEvent:
    if not isinstance(event, dict):
        raise FormatError([f"{where} must be an object"])
    project_id = _id(event.get("project"))
    match = _PROJECT_IN_URL.search(_text(event.get("url"), 2048))
    slug = match[1] if match else None
    if slug is None and project_id is None:
        raise FormatError([f"{where} names no project (project or url)"])
    return SentryEvent(
        project=slug or project_id or "",
        project_id=project_id,
        title=_text(event.get("title")) or _text(event.get("message")),
        level=_text(event.get("level"), 20),
        issue_id=_id(event.get("issue_id")),
        url=_text(event.get("web_url"), 2048) or _text(event.get("url"), 2048),
    )


def _plugin_event(data: dict[str, Any]) -> SentryEvent:
    slug = _id(data.get("project_slug")) or _id(data.get("project"))
    if slug is None:
        raise FormatError(["project must be the project's slug"])
    return SentryEvent(
        project=slug,
        project_id=_id(data.get("project_id")),
        title=_text(data.get("message")) or _text(data.get("culprit")),
        level=_text(data.get("level"), 20),
        issue_id=_id(data.get("id")),
        url=_text(data.get("url"), 2048),
    )


def parse(body: Any, resource: str | None) -> list[SentryEvent]:
    """The error events a webhook reports (zero or one); FormatError if it is not Sentry's."""
    data = require_object(body)
    resource = (resource or "").strip().lower()
    inner = data.get("data")
    if not resource and isinstance(inner, dict):
        # No header (a proxy dropped it): recognise the resource by its payload.
        resource = "event_alert" if "event" in inner else "error" if "error" in inner else "other"
    if resource in EVENT_RESOURCES:
        key, action = EVENT_RESOURCES[resource]
        if data.get("action") != action:
            raise FormatError([f'{resource} webhooks have action "{action}"'])
        if not isinstance(inner, dict):
            raise FormatError(["data must be an object"])
        return [_platform_event(inner.get(key), f"data.{key}")]
    if resource:
        return []  # issue, metric_alert, installation, comment, ...: no new event
    if "project" in data or "project_slug" in data:
        return [_plugin_event(data)]
    raise FormatError(["not a Sentry webhook: expected an issue alert, error or webhook-plugin payload"])
