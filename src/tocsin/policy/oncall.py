"""Who can be paged: people, teams and their rotations, and how paging and escalation reach them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainSerializer, ValidationError, model_validator
from pydantic_core import InitErrorDetails

from tocsin.core.durations import format_duration
from tocsin.policy.fields import (
    Duration,
    EmailAddress,
    PolicyModel,
    Slug,
    TimeOfDay,
    _check_pattern,
    custom_error,
    to_duration,
)

if TYPE_CHECKING:
    from tocsin.policy.models import Policy

Contact = Literal["email", "slack", "webhook"]
Layer = Literal["primary", "backup", "management"]
LAYERS: tuple[Layer, ...] = ("primary", "backup", "management")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MIN_HANDOFF = timedelta(hours=1)

SlackMember = Annotated[
    str, _check_pattern("slack_member", r"[UW][A-Z0-9]{2,20}", "a Slack member id (such as U0123ABCD)")
]
WebhookUrl = Annotated[
    str,
    _check_pattern("url", r"https?://[^\s/]+(/\S*)?", "an http(s) URL (such as https://sms.example/hook)"),
]


def _to_handoff(value: Any) -> timedelta:
    if isinstance(value, str) and value.strip().lower() in ("daily", "weekly"):
        return timedelta(days=1 if value.strip().lower() == "daily" else 7)
    handoff = to_duration(value)
    if handoff < MIN_HANDOFF or handoff % timedelta(minutes=1):
        raise custom_error(
            "handoff", f"{format_duration(handoff)}: hand off daily, weekly or every 1h or more"
        )
    return handoff


def _to_local_datetime(value: Any) -> datetime:
    """A wall-clock time without an offset: "2026-01-05 09:00" (a bare date means its midnight)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            raise custom_error(
                "local_time",
                "write the local wall-clock time without an offset (the policy timezone applies)",
            )
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is None:
            return parsed
    raise custom_error(
        "local_time",
        f'"{value}" is not a local date and time (write "YYYY-MM-DD HH:MM", e.g. "2026-01-05 09:00")',
    )


Handoff = Annotated[
    timedelta, BeforeValidator(_to_handoff), PlainSerializer(format_duration, when_used="json")
]
LocalDateTime = Annotated[
    datetime,
    BeforeValidator(_to_local_datetime),
    PlainSerializer(lambda d: d.strftime("%Y-%m-%d %H:%M"), when_used="json"),
]


class NotifyRule(PolicyModel):
    """Reach a person `via` one of their contacts, `after` the page if still unacknowledged."""

    via: Contact
    after: Duration = timedelta(0)


class Person(PolicyModel):
    """Someone who can be paged; `name` is also their Tocsin user name."""

    name: Slug
    full_name: str = ""
    email: EmailAddress | None = None
    slack: SlackMember | None = None
    webhook: WebhookUrl | None = None
    titles: list[str] = []
    notify: list[NotifyRule] | None = None

    @model_validator(mode="after")
    def _contacts_for_rules(self) -> Person:
        for index, rule in enumerate(self.notify or []):
            if getattr(self, rule.via) is None:
                raise _located(
                    ("notify", index, "via"),
                    f'{self.name} has no {rule.via} contact: add "{rule.via}:" or drop this rule',
                    rule.via,
                )
        return self

    @property
    def display_name(self) -> str:
        """The full name, or the name when none is given."""
        return self.full_name or self.name

    def contact(self, via: Contact) -> str | None:
        """The address for one kind of contact, if the person has it."""
        value: str | None = getattr(self, via)
        return value

    def rules(self, default: list[NotifyRule]) -> list[NotifyRule]:
        """The person's notification rules; the default ones keep only the contacts they have."""
        if self.notify is not None:
            return list(self.notify)
        return [rule for rule in default if self.contact(rule.via) is not None]


class ActiveHours(PolicyModel):
    """When a rotation is on call: from `from` to `to` (wrapping past midnight) on `days`."""

    model_config = {**PolicyModel.model_config, "populate_by_name": True}

    starts: TimeOfDay = Field(alias="from")
    ends: TimeOfDay = Field(alias="to")
    days: list[Day] = Field(default=list(DAYS), min_length=1)

    @property
    def weekday_numbers(self) -> frozenset[int]:
        """The days as numbers, 0 for Monday; a window belongs to the day it starts on."""
        return frozenset(DAYS.index(day) for day in self.days)

    @property
    def length(self) -> timedelta:
        """How long each day's window lasts; from == to means a whole day."""
        span = datetime.combine(date.min, self.ends) - datetime.combine(date.min, self.starts)
        return span if span > timedelta(0) else span + timedelta(days=1)


class Rotation(PolicyModel):
    """People taking turns: each is on call for `handoff`, in order, from `start` (local time)."""

    name: Slug
    layer: Layer = "primary"
    members: list[Slug]
    handoff: Handoff = timedelta(days=7)
    start: LocalDateTime
    active: ActiveHours | None = None

    @model_validator(mode="before")
    @classmethod
    def _has_members(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("members") == []:
            raise _located(("members",), "a rotation needs at least one member", [])
        return data


class Team(PolicyModel):
    """The people paged for incidents of its services, in layers of rotations."""

    name: Slug
    title: str = ""
    services: list[Slug] = []
    rotations: list[Rotation] = []

    def layer(self, layer: Layer) -> list[Rotation]:
        """The team's rotations in one layer, in policy order."""
        return [rotation for rotation in self.rotations if rotation.layer == layer]


class Throttle(PolicyModel):
    """At most `messages` to one contact `per` window; the rest are held back and recorded."""

    messages: int = Field(ge=1)
    per: Duration


def _to_optional_slug(value: Any) -> Any:
    return None if value is None or (isinstance(value, str) and value.strip().lower() == "none") else value


class PagingPolicy(PolicyModel):
    """Which chains escalate an incident, the default notification rules and the per-contact throttle."""

    unacknowledged: Annotated[Slug | None, BeforeValidator(_to_optional_slug)] = "technical"
    unresolved: list[Slug] = ["technical", "business"]
    default_notify: list[NotifyRule] = [
        NotifyRule(via="slack"),
        NotifyRule(via="email", after=timedelta(minutes=5)),
        NotifyRule(via="webhook"),
    ]
    throttle: Throttle = Throttle(messages=20, per=timedelta(minutes=10))
    reminder_every: Duration = timedelta(minutes=10)


Problems = list[tuple[tuple[str | int, ...], str, Any]]  # (where, message, the value written)


def _located(loc: tuple[str | int, ...], message: str, value: Any) -> ValidationError:
    """A validation error placed at `loc` (relative to the model raising it), for file:line reports."""
    return _errors([(loc, message, value)])


def _errors(problems: Problems) -> ValidationError:
    details = [
        InitErrorDetails(type=custom_error("reference", message), loc=loc, input=value)
        for loc, message, value in problems
    ]
    return ValidationError.from_exception_data("Policy", details)


def check_references(policy: Policy) -> None:
    """Raise a ValidationError (one entry per problem, each at its field) for names that do not resolve."""
    problems: Problems = []
    _duplicates(problems, [(("people", i, "name"), p.name) for i, p in enumerate(policy.people)], "person")
    _duplicates(problems, [(("teams", i, "name"), t.name) for i, t in enumerate(policy.teams)], "team")
    rotations = [
        (("teams", ti, "rotations", ri, "name"), r.name)
        for ti, t in enumerate(policy.teams)
        for ri, r in enumerate(t.rotations)
    ]
    _duplicates(problems, rotations, "rotation")
    _check_teams(problems, policy)
    _check_steps(problems, policy, {name for _, name in rotations})
    _check_paging(problems, policy)
    _check_integrations(problems, policy)
    if problems:
        raise _errors(problems)


def _check_integrations(problems: Problems, policy: Policy) -> None:
    """The policy's integrations route to services it defines, each with a key variable of its own
    (two integrations with one key could not be told apart)."""
    services = {s.name for s in policy.services}
    variables: dict[str, str] = {}
    for i, spec in enumerate(policy.alerting.integrations):
        loc: tuple[str | int, ...] = ("alerting", "integrations", i)
        if spec.service is not None and spec.service not in services:
            problems.append(
                ((*loc, "service"), _unknown("service", spec.service, services, "services"), spec.service)
            )
        other = variables.setdefault(spec.key_env, spec.name)
        if other != spec.name:
            message = f'{spec.key_env} is integration "{other}"\'s key already; give each integration its own'
            problems.append(((*loc, "key_env"), message, spec.key_env))


def _check_teams(problems: Problems, policy: Policy) -> None:
    people = {p.name for p in policy.people}
    services = {s.name for s in policy.services}
    for ti, team in enumerate(policy.teams):
        for si, service in enumerate(team.services):
            if service not in services:
                loc: tuple[str | int, ...] = ("teams", ti, "services", si)
                problems.append((loc, _unknown("service", service, services, "services"), service))
        for ri, rotation in enumerate(team.rotations):
            for mi, member in enumerate(rotation.members):
                if member not in people:
                    loc = ("teams", ti, "rotations", ri, "members", mi)
                    problems.append((loc, _unknown("person", member, people, "people"), member))


def _check_steps(problems: Problems, policy: Policy, rotations: set[str]) -> None:
    targets = (
        ("person", {p.name for p in policy.people}, "people"),
        ("rotation", rotations, "teams.*.rotations"),
        ("team", {t.name for t in policy.teams}, "teams"),
    )
    for chain_name, chain in policy.escalation_chains.items():
        for si, step in enumerate(chain.steps):
            for kind, known, section in targets:
                value = getattr(step, kind)
                if value is not None and value not in known:
                    loc = ("escalation_chains", chain_name, "steps", si, kind)
                    problems.append((loc, _unknown(kind, value, known, section), value))


def _check_paging(problems: Problems, policy: Policy) -> None:
    chains = set(policy.escalation_chains)
    named: list[tuple[tuple[str | int, ...], str | None]] = [
        (("paging", "unacknowledged"), policy.paging.unacknowledged)
    ]
    named += [(("paging", "unresolved", i), chain) for i, chain in enumerate(policy.paging.unresolved)]
    for loc, chain in named:
        if chain is not None and chain not in chains:
            problems.append((loc, _unknown("escalation chain", chain, chains, "escalation_chains"), chain))


def _unknown(kind: str, value: str, known: set[str], section: str) -> str:
    listed = ", ".join(sorted(known)) if known else "none defined"
    return f'unknown {kind} "{value}" (define it under {section}; known: {listed})'


def _duplicates(problems: Problems, entries: Sequence[tuple[tuple[str | int, ...], str]], kind: str) -> None:
    seen: set[str] = set()
    for loc, value in entries:
        if value in seen:
            problems.append((loc, f'{kind} "{value}" is defined twice', value))
        seen.add(value)
