"""Label matchers as people write them (`alertname=DiskFull`, `instance=~db-.*`), and what they match:
for silences and for filtering alerts, in the CLI, the console and the API. No database here, so the
CLI imports it cheaply."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)(.*)")
_UNESCAPE = re.compile(r'\\(["\\])')  # inside quotes, \" is a quote and \\ a backslash
_OPS = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}


def parse_matcher(text: str) -> dict[str, Any]:
    """`name=value`, `name!=value`, `name=~regex` or `name!~regex` (amtool's forms); ValueError if not.
    A value may be quoted, as amtool and Alertmanager's UI write it."""
    match = _MATCHER.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a matcher: name=value, name!=value, name=~regex or name!~regex")
    name, op, value = match.groups()
    value = value.strip()
    if value[:1] == '"':
        if len(value) < 2 or value[-1] != '"' or _escaped_end(value[1:-1]):
            raise ValueError(f"{text.strip()!r}: the quoted value has no closing quote")
        value = _UNESCAPE.sub(r"\1", value[1:-1])
    return {"name": name, "value": value, "is_regex": "~" in op, "is_equal": not op.startswith("!")}


def matcher_text(matcher: dict[str, Any]) -> str:
    """A matcher as `parse_matcher` reads it."""
    op = _OPS[(bool(matcher.get("is_regex")), bool(matcher.get("is_equal", True)))]
    value = matcher["value"]
    if value[:1] == '"' or value != value.strip():
        value = f'"{_quoted(value)}"'  # read back as it is, quotes and spaces kept
    return f"{matcher['name']}{op}{value}"


def matches(matcher: dict[str, Any], labels: dict[str, Any]) -> bool:
    """Whether the labels satisfy the matcher; a label that is missing reads as empty, as in Alertmanager."""
    value = labels.get(matcher["name"], "")
    if not isinstance(value, str):
        value = str(value)
    if matcher.get("is_regex"):
        hit = re.fullmatch(matcher["value"], value) is not None
    else:
        hit = value == matcher["value"]
    return hit if matcher.get("is_equal", True) else not hit


def matching(matchers: list[dict[str, Any]]) -> Callable[[dict[str, Any]], bool]:
    """`matches` of every matcher as one check, its regular expressions compiled once: for scanning many
    alerts."""
    checks = [_check(m) for m in matchers]
    return lambda labels: all(check(labels) for check in checks)


def _check(matcher: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    name, value, equal = matcher["name"], matcher["value"], bool(matcher.get("is_equal", True))
    if matcher.get("is_regex"):
        full = re.compile(value).fullmatch

        def regex(labels: dict[str, Any]) -> bool:
            return (full(_text(labels.get(name, ""))) is not None) is equal

        return regex

    def exact(labels: dict[str, Any]) -> bool:
        return (_text(labels.get(name, "")) == value) is equal

    return exact


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def parse_filter(text: str) -> list[dict[str, Any]]:
    """Matchers separated by commas, as Alertmanager's UI and amtool write a filter:
    `{alertname="DiskFull", instance=~"db-.*"}`. Braces and quotes are optional (a value with a comma
    needs quotes); nothing at all is no matcher. ValueError names the part that is not a matcher, or
    the regular expression that does not compile."""
    body = text.strip()
    if body[:1] == "{" and body[-1:] == "}":
        body = body[1:-1]
    found = []
    for part in _split(body):
        if not part.strip():
            continue
        matcher = parse_matcher(part)
        if matcher["is_regex"]:
            try:
                re.compile(matcher["value"])
            except re.error as exc:
                raise ValueError(f"{part.strip()!r}: not a regular expression: {exc}") from None
        found.append(matcher)
    return found


def filter_text(matchers: list[dict[str, Any]]) -> str:
    """Matchers as `parse_filter` reads them back, every value quoted."""
    return ", ".join(
        f'{m["name"]}{_OPS[(bool(m.get("is_regex")), bool(m.get("is_equal", True)))]}"{_quoted(m["value"])}"'
        for m in matchers
    )


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _escaped_end(inner: str) -> bool:
    """Whether a quoted value's last quote is escaped (an odd run of backslashes before it)."""
    return (len(inner) - len(inner.rstrip("\\"))) % 2 == 1


def _split(body: str) -> list[str]:
    """The parts between commas that are not inside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in body:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts
