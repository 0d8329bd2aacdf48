"""Small, fast checks shared by the format parsers (no model validation on the hot path)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tocsin.alerts.signals import FormatError

MAX_LABELS = 64
MAX_LABEL_NAME = 128
MAX_LABEL_VALUE = 4096
ZERO_TIME = "0001-01-01T00:00:00Z"


def string_map(value: Any, where: str, errors: list[str]) -> dict[str, str]:
    """A JSON object of string values, bounded in size; problems are added to `errors`."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.append(f"{where} must be an object of strings")
        return {}
    if len(value) > MAX_LABELS:
        errors.append(f"{where} has {len(value)} entries; at most {MAX_LABELS}")
        return {}
    for k, v in value.items():
        if type(v) is not str or len(k) > MAX_LABEL_NAME or len(v) > MAX_LABEL_VALUE:
            break
    else:
        return value  # all well (the common case): the parsed object itself, not a copy
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(v, str):
            errors.append(f"{where}.{k} must be a string")
        elif len(k) > MAX_LABEL_NAME or len(v) > MAX_LABEL_VALUE:
            errors.append(f"{where}.{k} is too long")
        else:
            out[k] = v
    return out


def timestamp(value: Any, where: str, errors: list[str]) -> datetime | None:
    """An RFC 3339 instant; Go's zero time and absent values are None."""
    if value is None or value == "" or value == ZERO_TIME:
        return None
    if not isinstance(value, str):
        errors.append(f"{where} must be an RFC 3339 timestamp")
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        errors.append(f"{where} is not an RFC 3339 timestamp: {value[:40]!r}")
        return None
    if parsed.tzinfo is None:
        errors.append(f"{where} needs a time zone offset")
        return None
    if parsed.year < 1000:  # Go's zero time with an offset
        return None
    return parsed.astimezone(UTC)


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise FormatError(["the body must be a JSON object"])
    return body
