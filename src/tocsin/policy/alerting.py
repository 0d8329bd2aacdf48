"""How signals become incidents: grouping, severity and inhibit rules, integrations declared in the policy."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator

from tocsin.alerts.matchers import matching, parse_matcher
from tocsin.policy.fields import Duration, PolicyModel, Slug, custom_error

IntegrationKind = Literal["alertmanager", "prometheus", "pagerduty", "generic", "heartbeat", "sentry"]


def _severity_key(value: str) -> str:
    if not re.fullmatch(r"P[0-9]", value):
        raise custom_error("severity_key", f'"{value}" is not a severity key (P0 to P9)')
    return value


SeverityKey = Annotated[str, AfterValidator(_severity_key)]
LabelValues = str | list[str]


class SeverityRule(PolicyModel):
    """If every label in `match` has one of the listed values, the alert gets `severity`."""

    match: dict[str, LabelValues] = Field(min_length=1)
    severity: SeverityKey
    reason: str = ""

    def matches(self, labels: dict[str, str]) -> bool:
        for name, wanted in self.match.items():
            value = labels.get(name)
            if value is None or (value != wanted if isinstance(wanted, str) else value not in wanted):
                return False
        return True


def _matcher(value: str) -> str:
    """One matcher as amtool and Alertmanager's configuration write it (`severity="critical"`)."""
    try:
        matcher = parse_matcher(value)
        if matcher["is_regex"]:
            re.compile(matcher["value"])
    except (ValueError, re.error) as error:
        text = f"{value!r}: not a regular expression: {error}" if isinstance(error, re.error) else str(error)
        raise custom_error("matcher", text) from None
    return value


def _label_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise custom_error("label_name", f'"{value}" is not a label name')
    return value


MatcherText = Annotated[str, AfterValidator(_matcher)]
LabelName = Annotated[str, AfterValidator(_label_name)]


class InhibitRule(PolicyModel):
    """Alertmanager's inhibit rule, written as in its configuration: while an open alert matches every
    source matcher, a new alert matching every target matcher, with the same values of the `equal`
    labels (a missing label reads as empty), is muted (recorded, no incident, no page)."""

    source_matchers: list[MatcherText] = Field(min_length=1)
    target_matchers: list[MatcherText] = Field(min_length=1)
    equal: list[LabelName] = []

    @functools.cached_property
    def source(self) -> list[dict[str, Any]]:
        return [parse_matcher(m) for m in self.source_matchers]

    @functools.cached_property
    def is_source(self) -> Callable[[dict[str, Any]], bool]:
        return matching(self.source)

    @functools.cached_property
    def is_target(self) -> Callable[[dict[str, Any]], bool]:
        return matching([parse_matcher(m) for m in self.target_matchers])

    def key(self, labels: dict[str, Any]) -> tuple[str, ...]:
        """The values of the `equal` labels, as a source and its targets must share them."""
        return tuple(str(labels.get(name, "")) for name in self.equal)


class IntegrationSpec(PolicyModel):
    """An integration declared in the policy; its key comes from an environment variable."""

    name: Slug
    kind: IntegrationKind
    service: Slug | None = None
    key_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")
    severity_rules: list[SeverityRule] = []


class SeverityMemory:
    """`severity_for`'s answers, by integration rules and the values of the labels the rules look at."""

    def __init__(self) -> None:
        self.names: dict[int, tuple[tuple[SeverityRule, ...], tuple[str, ...]]] = {}
        self.answers: dict[
            tuple[int, tuple[str | None, ...]], tuple[tuple[SeverityRule, ...], tuple[str, str]]
        ] = {}


class AlertingPolicy(PolicyModel):
    """Grouping windows, severity and inhibit rules for alerts from every source."""

    group_window: Duration = timedelta(minutes=10)
    group_by: list[str] = []
    severity_rules: list[SeverityRule] = []
    inhibit_rules: list[InhibitRule] = []
    default_severity: SeverityKey = "P2"
    complete_outage_severity: SeverityKey | None = "P0"
    rate_limit_per_minute: int = Field(default=3_000_000, ge=1)
    reports_threshold: int = Field(default=3, ge=1)
    reports_window: Duration = timedelta(minutes=15)
    integrations: list[IntegrationSpec] = []

    @field_validator("integrations")
    @classmethod
    def _unique(cls, items: list[IntegrationSpec]) -> list[IntegrationSpec]:
        names = [i.name for i in items]
        for name in names:
            if names.count(name) > 1:
                raise custom_error("duplicate", f'integration "{name}" is defined twice')
        return items

    def inhibits(self, labels: dict[str, Any]) -> bool:
        """Whether an inhibit rule may mute an alert with these labels (it matches a rule's targets)."""
        return bool(self.inhibit_rules) and any(rule.is_target(labels) for rule in self.inhibit_rules)

    def severity_references(self) -> list[tuple[str, str]]:
        """(field, severity key) of every severity this section names."""
        refs = [("default_severity", self.default_severity)]
        if self.complete_outage_severity:
            refs.append(("complete_outage_severity", self.complete_outage_severity))
        refs += [(f"severity_rules.{i}.severity", r.severity) for i, r in enumerate(self.severity_rules)]
        for i, spec in enumerate(self.integrations):
            refs += [
                (f"integrations.{i}.severity_rules.{j}.severity", r.severity)
                for j, r in enumerate(spec.severity_rules)
            ]
        return refs

    def fitted(self, keys: list[str]) -> dict[str, object]:
        """This section as data, with the severities it names mapped onto `keys` (worst first)."""
        data = self.model_dump(mode="json")
        data["severity_rules"] = [r for r in data["severity_rules"] if r["severity"] in keys]
        if keys and data["default_severity"] not in keys:
            data["default_severity"] = keys[-1]
        if keys and data["complete_outage_severity"] not in keys:
            data["complete_outage_severity"] = keys[0]
        return data

    def severity_for(self, labels: dict[str, str], extra: tuple[SeverityRule, ...] = ()) -> tuple[str, str]:
        """The first matching rule's severity and reason (integration rules first), else the default.

        Remembered by the values of the labels the rules look at: a storm's alerts differ in others.
        """
        memory = self.severity_memory
        seen = memory.names.get(id(extra))
        if seen is None or seen[0] is not extra:
            names = sorted({name for rule in (*extra, *self.severity_rules) for name in rule.match})
            seen = memory.names[id(extra)] = (extra, tuple(names))
            if len(memory.names) > 1000:
                memory.names.clear()
        key = (id(extra), tuple(map(labels.get, seen[1])))
        hit = memory.answers.get(key)
        if hit is None or hit[0] is not extra:  # each entry keeps its rules alive: their id is not reused
            hit = memory.answers[key] = (extra, self._severity_for(labels, extra))
            if len(memory.answers) > 10_000:
                memory.answers.clear()
        return hit[1]

    @functools.cached_property
    def severity_memory(self) -> SeverityMemory:
        return SeverityMemory()

    def _severity_for(self, labels: dict[str, str], extra: tuple[SeverityRule, ...]) -> tuple[str, str]:
        for rule in [*extra, *self.severity_rules]:
            if rule.matches(labels):
                reason = rule.reason or ", ".join(f"{k}={labels[k]}" for k in rule.match)
                return rule.severity, reason
        return self.default_severity, "default severity"
