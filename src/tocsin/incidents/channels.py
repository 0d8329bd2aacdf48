"""Incident channel names: `#incident-YYYY-MM-DD-description`, under Slack's naming rules."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from datetime import date

SLACK_MAX = 80  # Slack channel names: lowercase a-z, 0-9, '-', at most 80 characters


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def channel_name(prefix: str, detected_on: date, description: str, taken: Collection[str]) -> str:
    """The first free channel name for an incident detected on `detected_on` (local date)."""
    head = f"{prefix}-{detected_on.isoformat()}"
    slug = slugify(description)
    for n in range(1, 10_000):
        suffix = "" if n == 1 else f"-{n}"
        room = SLACK_MAX - len(head) - len(suffix) - 1
        body = slug[:room].rstrip("-") if room > 0 else ""
        name = f"#{head}-{body}{suffix}" if body else f"#{head}{suffix}"
        if name not in taken:
            return name
    raise RuntimeError("no free channel name")  # 10,000 incidents with one title on one day
