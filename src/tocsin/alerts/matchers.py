"""Silence matchers as people write them (`alertname=DiskFull`, `instance=~db-.*`), for the CLI and the
console; no database here, so the CLI imports it cheaply."""

from __future__ import annotations

import re
from typing import Any

_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)(.*)")
_OPS = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}


def parse_matcher(text: str) -> dict[str, Any]:
    """`name=value`, `name!=value`, `name=~regex` or `name!~regex` (amtool's forms); ValueError if not.
    A value may be quoted, as amtool and Alertmanager's UI write it."""
    match = _MATCHER.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a matcher: name=value, name!=value, name=~regex or name!~regex")
    name, op, value = match.groups()
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return {"name": name, "value": value, "is_regex": "~" in op, "is_equal": not op.startswith("!")}


def matcher_text(matcher: dict[str, Any]) -> str:
    """A matcher as `parse_matcher` reads it."""
    op = _OPS[(bool(matcher.get("is_regex")), bool(matcher.get("is_equal", True)))]
    return f"{matcher['name']}{op}{matcher['value']}"
