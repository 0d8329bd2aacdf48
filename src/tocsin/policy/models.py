"""The incident response policy: severities, deadlines, escalation, communication, services."""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    PlainSerializer,
    PlainValidator,
    SerializationInfo,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tocsin.core.calendar import BusinessCalendar
from tocsin.core.durations import format_duration
from tocsin.policy.alerting import AlertingPolicy
from tocsin.policy.content import (
    Checklists,
    Mitigation,
    Phase,
    Scenario,
    Section,
    Templates,
    unique_names,
)
from tocsin.policy.detectors import ErrorRates, Heartbeats
from tocsin.policy.fields import (
    ChannelPrefix,
    Duration,
    EmailAddress,
    OptionalDuration,
    PolicyModel,
    SlackChannel,
    Slug,
    TimeOfDay,
    custom_error,
    to_duration,
)
from tocsin.policy.monitors import MonitorSpec, check_monitors
from tocsin.policy.oncall import PagingPolicy, Person, Team, check_references

PageTarget = Literal["primary", "backup", "full_team", "management"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SEVERITY_KEY = re.compile(r"P[0-9]")


class UnknownSeverity(ValueError):
    """A severity key that the policy does not define."""


class NextBusinessDay(PolicyModel):
    """The deadline "close of the next business day", written ``next business day`` in YAML."""

    def __str__(self) -> str:
        return "next business day"


Deadline = timedelta | NextBusinessDay


def _to_deadline(value: Any) -> Deadline:
    if isinstance(value, NextBusinessDay):
        return value
    if isinstance(value, str) and " ".join(value.lower().split()) == "next business day":
        return NextBusinessDay()
    return to_duration(value)


def _dump_deadline(value: Deadline, info: SerializationInfo) -> timedelta | str:
    if isinstance(value, NextBusinessDay):
        return str(value)
    return format_duration(value) if info.mode == "json" else value


DeadlineField = Annotated[
    Deadline, PlainValidator(_to_deadline, json_schema_input_type=str), PlainSerializer(_dump_deadline)
]


def _check_severity_key(key: str) -> str:
    if not _SEVERITY_KEY.fullmatch(key):
        raise custom_error(
            "severity_key", f'"{key}" is not a severity key: use P and one digit, P0 (worst) to P9'
        )
    return key


class SeverityPolicy(PolicyModel):
    """How one severity (P0 to P9) is handled: deadlines, who is paged, escalation and update cadence."""

    key: Annotated[str, PlainValidator(lambda v: _check_severity_key(str(v)), json_schema_input_type=str)]
    name: str = Field(min_length=1)
    definition: str = Field(min_length=1)
    examples: list[str] = []
    response: DeadlineField
    resolution: DeadlineField
    escalate_after: OptionalDuration = None
    page: list[PageTarget] = Field(min_length=1)
    management_updates: OptionalDuration = None

    @property
    def rank(self) -> int:
        """0 for P0 (the worst), 1 for P1, and so on."""
        return int(self.key[1:])


class BusinessHours(PolicyModel):
    """When the team works, for "next business day" deadlines."""

    opens: TimeOfDay = time(9, 0)
    closes: TimeOfDay = time(17, 0)
    days: list[Weekday] = Field(default=["mon", "tue", "wed", "thu", "fri"], min_length=1)

    @field_validator("closes")
    @classmethod
    def _closes_after_opening(cls, closes: time, info: ValidationInfo) -> time:
        opens = info.data.get("opens")
        if opens is not None and closes <= opens:
            raise custom_error(
                "business_hours", f"closes ({closes:%H:%M}) must be after opens ({opens:%H:%M})"
            )
        return closes

    @property
    def weekday_numbers(self) -> frozenset[int]:
        """The business days as numbers, 0 for Monday."""
        return frozenset(WEEKDAYS.index(day) for day in self.days)


class StatusPagePolicy(PolicyModel):
    """When the public status page must be updated."""

    update_within: Duration
    customer_facing_only: bool = True
    maintenance_reminder: Duration = timedelta(hours=1)  # subscribers are reminded this long before a window
    allow_private_webhooks: bool = False  # webhook subscribers may name loopback and private addresses
    subscribe_limit: int = Field(default=20, ge=1)  # subscription attempts per client address per hour
    export_dir: str | None = None  # `tocsin serve` rewrites the static export here after every change


class CommunicationPolicy(PolicyModel):
    """Internal cadence: status meetings during long incidents and the stability watch before resolving."""

    status_meetings_every: Duration
    stability_watch: Duration


class ChannelsPolicy(PolicyModel):
    """Where alerts go and how incident channels are named (``#incident-YYYY-MM-DD-description``)."""

    alerts: SlackChannel
    incident_prefix: ChannelPrefix = "incident"
    alerts_email: EmailAddress | None = None


class EscalationStep(PolicyModel):
    """One role in an escalation chain, reached `after` the previous step.

    At most one target: a person, a rotation (who is on call in it), a team (its primary and backup on
    call) or a Slack channel; with none, the step pages the people whose `titles` include `role`.
    """

    role: str = Field(min_length=1)
    after: Duration = timedelta(0)
    person: Slug | None = None
    rotation: Slug | None = None
    team: Slug | None = None
    channel: SlackChannel | None = None

    @model_validator(mode="after")
    def _one_target(self) -> EscalationStep:
        targets = [
            name for name in ("person", "rotation", "team", "channel") if getattr(self, name) is not None
        ]
        if len(targets) > 1:
            raise custom_error(
                "escalation_step", f"a step has at most one target; this one has {' and '.join(targets)}"
            )
        return self


class EscalationChain(PolicyModel):
    """An ordered list of roles to escalate to, optionally repeated."""

    title: str = ""
    steps: list[EscalationStep] = Field(min_length=1)
    repeat: int = Field(default=0, ge=0)


class Component(PolicyModel):
    """A part of a service shown on the status page."""

    name: Slug
    title: str = Field(min_length=1)
    description: str = ""


class Service(PolicyModel):
    """Something users depend on, made of components."""

    name: Slug
    title: str = Field(min_length=1)
    description: str = ""
    components: list[Component] = []


class PostmortemPolicy(PolicyModel):
    """When the post-mortem meeting must be held and the document finished."""

    schedule_within: Duration
    complete_within: Duration


def _seed() -> Policy:
    # Sections a team leaves out of its policy file are the seed's; imported late to avoid a cycle.
    from tocsin.policy.loader import default_policy

    return default_policy()


class Policy(PolicyModel):
    """A team's whole incident response policy; the built-in one is the seed runbook."""

    organization: str = Field(min_length=1)
    timezone: str
    business_hours: BusinessHours = BusinessHours()
    holidays: list[date] = []
    severities: dict[str, SeverityPolicy]
    status_page: StatusPagePolicy = Field(default_factory=lambda: _seed().status_page)
    communication: CommunicationPolicy = Field(default_factory=lambda: _seed().communication)
    channels: ChannelsPolicy
    escalation_triggers: list[str] = Field(default_factory=lambda: _seed().escalation_triggers)
    escalation_chains: dict[Slug, EscalationChain] = Field(default_factory=lambda: _seed().escalation_chains)
    services: list[Service] = []
    alerting: AlertingPolicy = Field(default_factory=lambda: _seed().alerting, validate_default=True)
    monitors: list[MonitorSpec] = []
    workflow: list[Phase] = Field(default_factory=lambda: _seed().workflow)
    checklists: Checklists = Field(default_factory=lambda: _seed().checklists)
    postmortem: PostmortemPolicy = Field(default_factory=lambda: _seed().postmortem)
    templates: Templates = Field(default_factory=lambda: _seed().templates)
    scenarios: list[Scenario] = []
    mitigations: list[Mitigation] = []
    resources: list[Section] = []
    heartbeats: Heartbeats = []
    error_rates: ErrorRates = []
    people: list[Person] = []
    teams: list[Team] = []
    paging: PagingPolicy = Field(default_factory=lambda: _seed().paging)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise custom_error(
                "timezone", f'"{name}" is not a time zone: use an IANA name such as "America/New_York"'
            ) from None
        return name

    @field_validator("severities", mode="before")
    @classmethod
    def _severity_keys_from_mapping(cls, value: Any) -> Any:
        # Each severity knows its key (for rank); in YAML the key is written once, as the mapping key.
        if not isinstance(value, dict):
            return value
        return {
            str(key): {"key": str(key), **entry} if isinstance(entry, dict) else entry
            for key, entry in value.items()
        }

    @field_validator("severities")
    @classmethod
    def _severities_consistent(cls, value: dict[str, SeverityPolicy]) -> dict[str, SeverityPolicy]:
        if not value:
            raise custom_error("severities", "define at least one severity, e.g. P0")
        for key, severity in value.items():
            if severity.key != key:
                raise custom_error("severities", f'severity "{key}" says its key is "{severity.key}"')
        return value

    @model_validator(mode="before")
    @classmethod
    def _fit_inherited_alerting(cls, data: Any) -> Any:
        # The built-in alerting rules name P0..P3; a policy with other severities that leaves the
        # section out gets those rules fitted to its own severities rather than an error.
        if not isinstance(data, dict) or "alerting" in data or not isinstance(data.get("severities"), dict):
            return data
        keys = sorted(
            (k for k in map(str, data["severities"]) if _SEVERITY_KEY.fullmatch(k)), key=lambda k: int(k[1:])
        )
        return {**data, "alerting": _seed().alerting.fitted(keys)} if keys else data

    @field_validator("alerting")
    @classmethod
    def _alerting_names_known_severities(
        cls, alerting: AlertingPolicy, info: ValidationInfo
    ) -> AlertingPolicy:
        keys = sorted(info.data.get("severities") or {})
        for where, severity in alerting.severity_references() if keys else []:
            if severity not in keys:
                raise custom_error(
                    "unknown_severity",
                    f'alerting.{where}: "{severity}" is not one of this policy\'s severities ({", ".join(keys)})'
                    " (a section left out is the built-in one: write your own alerting section)",
                )
        return alerting

    @field_validator("services")
    @classmethod
    def _unique_service_and_component_names(cls, services: list[Service]) -> list[Service]:
        seen: set[str] = set()
        for service in services:
            for name in [service.name, *(component.name for component in service.components)]:
                # One namespace for both, so a component name alone identifies it on the status page.
                if name in seen:
                    raise custom_error("duplicate", f'service or component "{name}" is defined twice')
                seen.add(name)
        return services

    @field_validator("monitors")
    @classmethod
    def _monitors_watch_known_components(cls, monitors: list[MonitorSpec], info: ValidationInfo) -> Any:
        services: list[Service] | None = info.data.get("services")
        if services is None:  # services were invalid: that is the error to report
            return monitors
        severities: dict[str, SeverityPolicy] | None = info.data.get("severities")
        components = {c.name for s in services for c in s.components}
        return check_monitors(monitors, components, set(severities) if severities is not None else None)

    @field_validator("scenarios", "mitigations", "workflow")
    @classmethod
    def _unique_names(cls, items: Any, info: ValidationInfo) -> Any:
        unique_names(
            items, {"scenarios": "scenario", "mitigations": "mitigation"}.get(info.field_name or "", "phase")
        )
        return items

    @model_validator(mode="after")
    def _oncall_names_resolve(self) -> Policy:
        check_references(self)  # people, rotations, teams and chains named anywhere must exist
        return self

    @property
    def tz(self) -> ZoneInfo:
        """The policy's time zone."""
        return ZoneInfo(self.timezone)

    @property
    def severity_keys(self) -> list[str]:
        """The severity keys, worst first (P0, P1, ...)."""
        return sorted(self.severities, key=lambda key: self.severities[key].rank)

    def service_of(self, component: str) -> str | None:
        """The service a component belongs to."""
        return next((s.name for s in self.services for c in s.components if c.name == component), None)

    @functools.cached_property
    def component_names(self) -> frozenset[str]:
        """The names of every component of every service."""
        return frozenset(component.name for service in self.services for component in service.components)

    @functools.cached_property
    def service_names(self) -> frozenset[str]:
        return frozenset(service.name for service in self.services)

    def severity(self, key: str) -> SeverityPolicy:
        """The severity with this key; UnknownSeverity names the allowed keys."""
        try:
            return self.severities[key]
        except KeyError:
            allowed = ", ".join(self.severity_keys)
            raise UnknownSeverity(f'unknown severity "{key}": expected one of {allowed}') from None

    def calendar(self) -> BusinessCalendar:
        """The business calendar of this policy (hours, days, holidays, time zone)."""
        hours = self.business_hours
        return _calendar(
            self.timezone, hours.opens, hours.closes, hours.weekday_numbers, frozenset(self.holidays)
        )

    def deadline(self, start: datetime, d: Deadline) -> datetime:
        """When a deadline d counted from the aware instant start falls due, in UTC."""
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError(f"{start.isoformat()} is a naive datetime; pass a timezone-aware (UTC) instant")
        if isinstance(d, NextBusinessDay):
            return self.calendar().close_of_next_business_day(start)
        return start.astimezone(UTC) + d


@functools.lru_cache(maxsize=32)
def _calendar(
    timezone: str, opens: time, closes: time, days: frozenset[int], holidays: frozenset[date]
) -> BusinessCalendar:
    # Cached by value rather than on the (frozen) model, so a copied or edited policy never sees a stale one.
    return BusinessCalendar(ZoneInfo(timezone), opens, closes, days, holidays)
