"""Policy sections for Tocsin's own detectors: heartbeats (dead-man's switches) and error-rate spikes."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationInfo, model_validator

from tocsin.policy.alerting import SeverityKey
from tocsin.policy.fields import Duration, PolicyModel, Slug, custom_error

# Dotted keys and list indexes into a JSON document: `summary.errors`, `data.0.count`.
_JSON_PATH = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
DEFAULT_PATHS = ("summary.errors", "summary.error_rate")


class HeartbeatSpec(PolicyModel):
    """A job that must ping `POST /api/v1/heartbeats/{name}` at least every `interval` (plus `grace`)."""

    name: Slug
    interval: Duration
    grace: Duration = timedelta(minutes=1)
    component: Slug | None = None
    severity: SeverityKey | None = None
    description: str = ""

    @model_validator(mode="after")
    def _positive_interval(self) -> HeartbeatSpec:
        if self.interval < timedelta(seconds=1):
            raise custom_error("duration", "interval must be at least 1s")
        return self


class ErrorRateSpec(PolicyModel):
    """Error counts of one service, polled or counted from a Sentry webhook, checked for spikes."""

    name: Slug
    component: Slug | None = None
    severity: SeverityKey | None = None
    source: Literal["poll", "webhook"]
    # poll: a JSON endpoint such as the seed's /api/monitoring?type=errors
    url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    path: str | None = None  # default: summary.errors, else summary.error_rate
    counter: bool = False  # the value is a running total: sample its increase per minute
    timeout: Duration = timedelta(seconds=10)
    token_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    # webhook: the Sentry project (slug or numeric id) whose events are counted; default: the name
    project: str | None = Field(default=None, min_length=1, max_length=100)
    # how often a sample is taken: the poll period, or the webhook's counting window
    interval: Duration = timedelta(minutes=1)
    unit: str = Field(default="/min", max_length=16)
    # the detector
    alpha: float = Field(default=0.1, gt=0, le=1)
    min_count: float = Field(default=10, ge=0)
    factor: float = Field(default=5, gt=1)
    clear_factor: float | None = Field(default=None, ge=1)
    floor: float = Field(default=1, ge=0)
    warmup: int = Field(default=10, ge=1)
    raise_after: int = Field(default=2, ge=1)
    clear_after: int = Field(default=3, ge=1)
    relearn_after: int = Field(default=60, ge=1)

    @model_validator(mode="after")
    def _source_fields(self) -> ErrorRateSpec:
        if self.interval < timedelta(seconds=1):
            raise custom_error("duration", "interval must be at least 1s")
        if self.source == "poll":
            if self.url is None:
                raise custom_error("error_rate", f'error rate "{self.name}": source poll needs a url')
            if self.project is not None:
                raise custom_error("error_rate", f'error rate "{self.name}": project is for source webhook')
        else:
            for key in ("url", "path", "token_env"):
                if getattr(self, key) is not None:
                    raise custom_error("error_rate", f'error rate "{self.name}": {key} is for source poll')
            if self.counter:
                raise custom_error("error_rate", f'error rate "{self.name}": counter is for source poll')
        if self.path is not None and not _JSON_PATH.fullmatch(self.path):
            raise custom_error("json_path", f'"{self.path}" is not a path such as summary.errors')
        if self.clear_factor is not None and self.clear_factor >= self.factor:
            raise custom_error("error_rate", "clear_factor must be below factor")
        return self

    @property
    def paths(self) -> tuple[str, ...]:
        """The JSON paths tried in turn for the value."""
        return (self.path,) if self.path else DEFAULT_PATHS

    @property
    def sentry_project(self) -> str:
        return self.project or self.name

    @property
    def effective_clear_factor(self) -> float:
        """Below this multiple of the baseline a sample counts towards clearing: halfway by default."""
        return self.clear_factor if self.clear_factor is not None else (1 + self.factor) / 2


def _check_placement(kind: str, items: list[Any], info: ValidationInfo) -> None:
    """Unique names; components and severities that the policy defines."""
    names = [item.name for item in items]
    for name in names:
        if names.count(name) > 1:
            raise custom_error("duplicate", f'{kind} "{name}" is defined twice')
    services = info.data.get("services")
    severities = info.data.get("severities")
    components = {c.name for s in services for c in s.components} if services is not None else None
    for item in items:
        if components is not None and item.component is not None and item.component not in components:
            known = ", ".join(sorted(components)) or "none"
            raise custom_error(
                "component", f'{kind} "{item.name}": unknown component "{item.component}"; known: {known}'
            )
        if severities is not None and item.severity is not None and item.severity not in severities:
            known = ", ".join(sorted(severities))
            raise custom_error(
                "severity_key", f'{kind} "{item.name}": unknown severity "{item.severity}"; known: {known}'
            )


def _heartbeats(items: list[HeartbeatSpec], info: ValidationInfo) -> list[HeartbeatSpec]:
    _check_placement("heartbeat", items, info)
    return items


def _error_rates(items: list[ErrorRateSpec], info: ValidationInfo) -> list[ErrorRateSpec]:
    _check_placement("error rate", items, info)
    return items


# Policy fields; they must come after `services` and `severities`, which their checks read.
Heartbeats = Annotated[list[HeartbeatSpec], AfterValidator(_heartbeats)]
ErrorRates = Annotated[list[ErrorRateSpec], AfterValidator(_error_rates)]
