"""Health-check monitors declared in the policy: what to check, how often, and what counts as healthy."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, PlainSerializer, PlainValidator, ValidationError, model_validator
from pydantic_core import InitErrorDetails

from tocsin.core.durations import format_duration
from tocsin.monitors.conditions import Condition, ConditionError, parse
from tocsin.policy.alerting import SeverityKey
from tocsin.policy.fields import Duration, PolicyModel, Slug, custom_error

MonitorKind = Literal["http", "tcp", "tls"]
HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

# What each kind of check measures; a condition on anything else could never pass.
MEASURED: dict[str, frozenset[str]] = {
    "http": frozenset({"STATUS", "RESPONSE_TIME", "IP", "CONNECTED", "BODY", "CERTIFICATE_EXPIRATION"}),
    "tcp": frozenset({"RESPONSE_TIME", "IP", "CONNECTED"}),
    "tls": frozenset({"RESPONSE_TIME", "IP", "CONNECTED", "CERTIFICATE_EXPIRATION"}),
}
# Without conditions: HTTP fails like `curl -f` (a status of 400 or more); TCP and TLS need a connection,
# and TLS a certificate valid for two more weeks.
DEFAULT_CONDITIONS: dict[str, tuple[str, ...]] = {
    "http": ("[STATUS] < 400",),
    "tcp": ("[CONNECTED] == true",),
    "tls": ("[CONNECTED] == true", "[CERTIFICATE_EXPIRATION] > 14d"),
}


def _to_condition(value: Any) -> Condition:
    if isinstance(value, Condition):
        return value
    if not isinstance(value, str):
        raise custom_error("condition", "a condition is text, e.g. [STATUS] == 200")
    try:
        return parse(value)
    except ConditionError as error:
        raise custom_error("condition", str(error)) from None


ConditionField = Annotated[
    Condition,
    PlainValidator(_to_condition, json_schema_input_type=str),
    PlainSerializer(str, return_type=str),
]


def _issue(loc: tuple[str | int, ...], value: Any, message: str) -> InitErrorDetails:
    return InitErrorDetails(type=custom_error("monitor", message), loc=loc, input=value)


class MonitorSpec(PolicyModel):
    """One health check: an HTTP(S) request, a TCP connect or a TLS handshake, run every `interval`."""

    name: Slug
    component: Slug
    kind: MonitorKind = "http"
    enabled: bool = True
    description: str = ""
    url: str | None = None
    host: str | None = Field(default=None, min_length=1, max_length=253)
    port: int | None = Field(default=None, ge=1, le=65535)
    method: HttpMethod = "GET"
    headers: dict[str, str] = {}
    body: str = ""
    follow_redirects: bool = False
    insecure: bool = False  # accept any certificate (self-signed, expired): the check still reads it
    interval: Duration = timedelta(seconds=30)
    timeout: Duration = timedelta(seconds=10)
    conditions: list[ConditionField] = []
    failure_threshold: int = Field(default=3, ge=1, le=1000)
    success_threshold: int = Field(default=2, ge=1, le=1000)
    severity: SeverityKey | None = None

    @model_validator(mode="after")
    def _consistent(self) -> MonitorSpec:
        issues: list[InitErrorDetails] = []
        if self.kind == "http":
            parts = urlsplit(self.url or "")
            if self.url is None:
                issues.append(_issue(("kind",), self.kind, "an http monitor needs a url"))
            elif parts.scheme not in ("http", "https") or not parts.hostname:
                issues.append(_issue(("url",), self.url, f'"{self.url}" is not an http:// or https:// URL'))
            for name in ("host", "port"):
                if getattr(self, name) is not None:
                    issues.append(_issue((name,), getattr(self, name), "http monitors take a url instead"))
        else:
            if self.url is not None:
                issues.append(
                    _issue(("url",), self.url, f"{self.kind} monitors take host and port, not a url")
                )
            if self.host is None:
                issues.append(_issue(("kind",), self.kind, f"a {self.kind} monitor needs a host"))
            if self.port is None and self.kind == "tcp":
                issues.append(_issue(("kind",), self.kind, "a tcp monitor needs a port"))
        if self.interval < timedelta(seconds=1):
            issues.append(_issue(("interval",), str(self.interval), "the interval must be at least 1s"))
        if self.timeout <= timedelta(0):
            issues.append(_issue(("timeout",), str(self.timeout), "the timeout must be more than 0s"))
        elif self.timeout > self.interval:
            # Placed on whichever of the two the author wrote, so the error points at a real line.
            where = "timeout" if "timeout" in self.model_fields_set else "interval"
            issues.append(
                _issue(
                    (where,),
                    str(getattr(self, where)),
                    f"the timeout ({format_duration(self.timeout)}) must not be longer than the interval "
                    f"({format_duration(self.interval)}): a check still running when the next is due is skipped",
                )
            )
        measured = MEASURED[self.kind]
        for index, condition in enumerate(self.conditions):
            unmeasured = sorted(condition.placeholders - measured)
            if unmeasured:
                names = ", ".join(f"[{name}]" for name in unmeasured)
                issues.append(
                    _issue(
                        ("conditions", index),
                        condition.text,
                        f"{names} is not measured by {self.kind} monitors",
                    )
                )
        if issues:
            raise ValidationError.from_exception_data(type(self).__name__, issues)
        return self

    @property
    def checked_conditions(self) -> list[Condition]:
        """The conditions the check must meet: the written ones, else the kind's defaults."""
        return list(self.conditions) or [parse(text) for text in DEFAULT_CONDITIONS[self.kind]]

    @property
    def target(self) -> str:
        """What is checked, for people: the URL, or host:port."""
        if self.kind == "http":
            return self.url or ""
        return f"{self.host}:{self.target_port}"

    @property
    def target_port(self) -> int:
        return self.port or 443


def check_monitors(
    monitors: list[MonitorSpec], components: set[str], severities: set[str] | None
) -> list[MonitorSpec]:
    """Monitor names are unique, each monitors a component of the policy's services, severities exist."""
    issues: list[InitErrorDetails] = []
    seen: set[str] = set()
    for index, monitor in enumerate(monitors):
        if monitor.name in seen:
            issues.append(_issue((index, "name"), monitor.name, f'monitor "{monitor.name}" is defined twice'))
        seen.add(monitor.name)
        if monitor.component not in components:
            known = ", ".join(sorted(components)) or "none: add services with components"
            issues.append(
                _issue(
                    (index, "component"),
                    monitor.component,
                    f'"{monitor.component}" is not a component of any service; known: {known}',
                )
            )
        if monitor.severity is not None and severities is not None and monitor.severity not in severities:
            known = ", ".join(sorted(severities))
            issues.append(
                _issue(
                    (index, "severity"),
                    monitor.severity,
                    f'"{monitor.severity}" is not one of this policy\'s severities ({known})',
                )
            )
    if issues:
        raise ValidationError.from_exception_data("monitors", issues)
    return monitors
