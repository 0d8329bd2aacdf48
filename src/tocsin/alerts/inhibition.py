"""Inhibit rules (Alertmanager's `inhibit_rules`, in the policy's `alerting` section): while an open alert
matches a rule's source matchers, a new alert matching its target matchers, with the same values of
the rule's `equal` labels, is muted by it, `muted_by = "inhibit:<id of the source>"`.

As with a silence, a muted alert is recorded and shown, joins its group's open incident quietly, and
opens no incident, pages nobody and raises no severity. Whether an alert is inhibited is decided when it
opens (Tocsin pages once an incident opens, not at every re-send); the alert-expiry sweep frees the
alerts whose source is no longer open, however it closed (its sender, its `endsAt`, a person resolving
it or its incident): each is muted again by another source or a silence if one covers it, else unmuted
and grouped as if it had just fired.

As in Alertmanager, a source may be muted itself, and an alert matching both sides of a rule is
inhibited only by a source that does not match its targets (so never by itself). New alerts of one
batch inhibit each other as alerts already open do, whatever their order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from sqlalchemy import Integer, Select, Text, and_, case, cast, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from tocsin.alerts.models import OPEN_STATUSES, Alert, label_value
from tocsin.policy.alerting import InhibitRule
from tocsin.policy.models import Policy

PREFIX = "inhibit:"
SOURCES = 10_000  # open sources read per rule and batch, newest first (a storm's criticals)


class Muteable(Protocol):
    @property
    def id(self) -> int | None: ...
    @property
    def labels(self) -> dict[str, Any]: ...
    @property
    def muted_by(self) -> str | None: ...


def muted_by(source_id: int) -> str:
    return f"{PREFIX}{source_id}"


@dataclass
class Found:
    """Which alerts (by their index in the list asked about) are inhibited, and by what."""

    by: dict[int, int] = field(default_factory=dict)  # -> the id of an open alert already written
    by_new: dict[int, int] = field(default_factory=dict)  # -> the index of an unwritten one of the list


@dataclass(slots=True)
class _Sources:
    """The newest source with some values of the `equal` labels: of any kind, and among those that do
    not match the rule's targets too (the only ones that may inhibit an alert matching both sides)."""

    any: int | None = None
    one_sided: int | None = None

    def take(self, source: int, two_sided: bool) -> None:
        if self.any is None:
            self.any = source
        if self.one_sided is None and not two_sided:
            self.one_sided = source

    def first(self, two_sided: bool) -> int | None:
        return self.one_sided if two_sided else self.any


async def find(
    session: AsyncSession, policy: Policy, alerts: Sequence[Muteable], again: bool = False
) -> Found:
    """The inhibitors of the alerts not muted already (`again`: of all of them, their muting having
    ended): open alerts in the database, or alerts of the list not yet written (`id` None).

    As in Alertmanager, an alert matching both the source and the target matchers of a rule is
    inhibited only by a source that does not match its targets; so no alert inhibits itself, and two
    alerts each matching both sides do not mute each other."""
    found = Found()
    for rule in policy.alerting.inhibit_rules:
        targets = [
            i
            for i, a in enumerate(alerts)
            if (again or a.muted_by is None)
            and i not in found.by
            and i not in found.by_new
            and rule.is_target(a.labels)
        ]
        if not targets:
            continue
        keys = {rule.key(alerts[i].labels) for i in targets}
        written = await _sources(session, rule, keys)
        unwritten: dict[tuple[str, ...], _Sources] = {}
        for i, alert in enumerate(alerts):
            key = rule.key(alert.labels)
            if alert.id is None and key in keys and rule.is_source(alert.labels):
                unwritten.setdefault(key, _Sources()).take(i, rule.is_target(alert.labels))
        for i in targets:
            labels = alerts[i].labels
            key, two_sided = rule.key(labels), rule.is_source(labels)
            source = written[key].first(two_sided) if key in written else None
            if source is not None:
                found.by[i] = source
            elif key in unwritten and (new := unwritten[key].first(two_sided)) is not None:
                found.by_new[i] = new
    return found


async def _sources(
    session: AsyncSession, rule: InhibitRule, keys: set[tuple[str, ...]]
) -> dict[tuple[str, ...], _Sources]:
    """The open alerts matching the rule's source matchers, by their values of the `equal` labels (among
    `keys`), newest first."""
    labels: Any = cast(Alert.labels, Text)
    query: Select[Any] = select(Alert.id, labels).where(Alert.status.in_(OPEN_STATUSES))
    for m in rule.source:
        if m["is_equal"] and not m["is_regex"] and m["value"]:
            query = query.where(label_value(m["name"]) == m["value"])
    if rule.equal:
        first = {key[0] for key in keys}
        if "" not in first:  # a missing label reads as empty, which SQL's NULL would not match
            query = query.where(label_value(rule.equal[0]).in_(sorted(first)))
    found: dict[tuple[str, ...], _Sources] = {}
    for id_, text in await session.execute(query.order_by(Alert.id.desc()).limit(SOURCES)):
        labels = orjson.loads(text) if text else {}
        key = rule.key(labels)
        if key in keys and rule.is_source(labels):
            found.setdefault(key, _Sources()).take(id_, rule.is_target(labels))
    return found


def still_open_muted() -> Any:
    """That a muted alert is still open, written so that neither database looks it up by the index of
    statuses: SQLite, with no statistics, read every open alert through it rather than the few muted
    ones through their partial index (65 ms at 20,000 open alerts, every 5 s, holding the turn to write).
    `status || ''` is no index lookup."""
    return Alert.status.concat("").in_(OPEN_STATUSES)


def inhibited() -> Any:
    """The condition that an alert is muted by an inhibit rule, as a range of `muted_by` (an index
    range on either database, where LIKE is none on SQLite)."""
    return and_(Alert.muted_by >= PREFIX, Alert.muted_by < PREFIX[:-1] + chr(ord(PREFIX[-1]) + 1))


def ended(limit: int) -> Select[Any]:
    """The open alerts inhibited by an alert that is no longer open: through the index of muted alerts,
    each source by its id."""
    source = aliased(Alert)
    source_id = cast(case((inhibited(), func.substr(Alert.muted_by, len(PREFIX) + 1))), Integer)
    still_open = exists().where(and_(source.id == source_id, source.status.in_(OPEN_STATUSES)))
    return select(Alert).where(inhibited(), still_open_muted(), ~still_open).order_by(Alert.id).limit(limit)
