"""Field types shared by the policy models: durations, times of day, slugs, Slack channel names."""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainSerializer
from pydantic_core import PydanticCustomError

from tocsin.core.durations import format_duration, parse_duration


class PolicyModel(BaseModel):
    """Base of every policy model: unknown keys are errors and a loaded policy never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def custom_error(kind: str, message: str) -> PydanticCustomError:
    """A validation error whose message is shown to the policy author as is."""
    # The message goes in through the context so braces in user input are never read as placeholders.
    return PydanticCustomError(kind, "{message}", {"message": message})


def to_duration(value: Any) -> timedelta:
    """Validate a duration written as text (``15m``); timedeltas pass through."""
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise custom_error("duration", f"{value} is negative; durations count forward")
        return value
    try:
        return parse_duration(value if isinstance(value, str) else str(value))
    except ValueError as error:
        raise custom_error("duration", str(error)) from None


def _to_optional_duration(value: Any) -> timedelta | None:
    # "none" reads better than YAML's null next to the other durations of a severity.
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    return to_duration(value)


def _to_time_of_day(value: Any) -> time:
    if isinstance(value, time):
        return value
    match = re.fullmatch(r"([01]?[0-9]|2[0-3]):([0-5][0-9])", value) if isinstance(value, str) else None
    if match is None:
        raise custom_error("time_of_day", f'"{value}" is not a time of day (write "HH:MM", e.g. "09:00")')
    return time(int(match[1]), int(match[2]))


def _check_pattern(kind: str, pattern: str, what: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise custom_error(kind, f'"{value}" is not {what}')
        return value

    return AfterValidator(check)


Duration = Annotated[
    timedelta, BeforeValidator(to_duration), PlainSerializer(format_duration, when_used="json")
]
OptionalDuration = Annotated[
    timedelta | None,
    BeforeValidator(_to_optional_duration),
    PlainSerializer(lambda d: None if d is None else format_duration(d), when_used="json"),
]
TimeOfDay = Annotated[
    time, BeforeValidator(_to_time_of_day), PlainSerializer(lambda t: t.strftime("%H:%M"), when_used="json")
]
# Lowercase words joined by hyphens: stable identifiers used in URLs and the API.
Slug = Annotated[
    str, _check_pattern("slug", r"[a-z0-9]+(?:-[a-z0-9]+)*", "a name (lowercase words joined by -)")
]
SlackChannel = Annotated[
    str,
    _check_pattern("slack_channel", r"#[a-z0-9_-]{1,80}", "a Slack channel (# and up to 80 of a-z 0-9 - _)"),
]
ChannelPrefix = Annotated[
    str,
    _check_pattern("channel_prefix", r"[a-z0-9_-]{1,50}", "a channel name prefix (up to 50 of a-z 0-9 - _)"),
]
EmailAddress = Annotated[str, _check_pattern("email", r"[^@\s]+@[^@\s]+\.[^@\s]+", "an email address")]
