"""The console's Jinja environment: built once per app, with filters for the policy's time zone."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from tocsin.core.durations import format_duration
from tocsin.policy.models import Policy
from tocsin.web.deadlines import short_duration

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

# Pages carry CSRF tokens and live data: never cached, never framed, no inline script or style.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


def _static_versions() -> dict[str, str]:
    """A short content hash per static file, appended to its URL so browsers never use a stale copy."""
    return {
        path.relative_to(STATIC).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()[:10]
        for path in STATIC.rglob("*")
        if path.is_file()
    }


class Console:
    """Renders the console's pages and fragments for one policy (its organisation and time zone)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        tz = policy.tz
        versions = _static_versions()
        env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(["html"], default_for_string=True, default=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

        def local(at: datetime | None, fmt: str = "%Y-%m-%d %H:%M %Z") -> str:
            return "" if at is None else at.astimezone(tz).strftime(fmt)

        def local_near(at: datetime | None, now: datetime) -> str:
            """`13:27 EST` on the same local day as `now`, else `Nov 27 17:00 EST`."""
            if at is None:
                return ""
            here = at.astimezone(tz)
            same_day = here.date() == now.astimezone(tz).date()
            return here.strftime("%H:%M %Z" if same_day else "%b %d %H:%M %Z")

        def iso(at: datetime | None) -> str:
            return "" if at is None else at.astimezone(UTC).isoformat(timespec="seconds")

        def duration(value: timedelta | float | None) -> str:
            if value is None:
                return ""
            seconds = value.total_seconds() if isinstance(value, timedelta) else value
            return short_duration(seconds)

        def span(value: object) -> str:
            """A policy deadline as written in the policy: `15m`, `4h`, `next business day`."""
            if isinstance(value, timedelta):
                return format_duration(value)
            return "none" if value is None else str(value)

        def static_url(name: str) -> str:
            return f"/static/{name}?v={versions.get(name, '0')}"

        def web_url(value: object) -> bool:
            """Text a sender gave that may be made a link: http(s) only, never `javascript:` and the like."""
            return isinstance(value, str) and value.startswith(("https://", "http://"))

        env.filters.update(local=local, local_near=local_near, iso=iso, duration=duration, span=span)
        env.tests["web_url"] = web_url
        env.globals.update(policy=policy, static_url=static_url, tz_name=policy.timezone)
        self.env = env

    def fragment(self, template: str, /, **context: Any) -> str:
        """Render a template to a string (a page fragment, e.g. one timeline event)."""
        return self.env.get_template(template).render(**context)

    def page(self, template: str, /, *, status_code: int = 200, **context: Any) -> HTMLResponse:
        """Render a whole page with the console's security headers."""
        return HTMLResponse(self.fragment(template, **context), status_code=status_code, headers=PAGE_HEADERS)


def console(request: Request) -> Console:
    """FastAPI dependency: the app's Console (built by `tocsin.web.pages.mount_static`)."""
    found: Console = request.app.state.console
    return found
