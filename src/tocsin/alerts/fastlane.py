"""The storm lane: a batch that only re-sends open alerts or adds alerts to incidents already open.

That is what an alert storm and Prometheus's minutely re-sends are made of, and it needs no incident
logic: no incident opens, no severity rises, no timeline note is due, nothing is muted, acknowledged
or resolved. Such a batch is written with a handful of driver-level statements (`tocsin.db.raw`)
instead of the ORM's dozen. Anything else, decided before anything is written, returns None and the
caller (the ingest pipeline) takes the full path (`service.ingest`) instead. The rows written are the same
as the full path's; tests compare the two.
"""

from __future__ import annotations

import operator
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import JSON, Integer, Table
from sqlalchemy.ext.asyncio import AsyncEngine

from tocsin.alerts import grouping, openkeys, silences
from tocsin.alerts.integrations import IntegrationInfo
from tocsin.alerts.models import Alert
from tocsin.alerts.signals import NewAlert, Outcome, Repeat, Signal
from tocsin.core.clock import Clock
from tocsin.db.base import UTCDateTime
from tocsin.db.engine import Database
from tocsin.db.raw import Last, Plan, Raw, Rows, Step
from tocsin.incidents.lifecycle import is_open
from tocsin.policy.models import Policy

CHUNK = 500  # keys per lookup, rows per insert: within both databases' parameter limits
# Up to this many signals a commit is short enough (under 100 ms on a slow machine) to run on the event
# loop's thread on SQLite (`Raw.drive(small=True)`); a bigger one leaves the loop free meanwhile.
SMALL = 4_000

_table: Table = Alert.__table__  # type: ignore[assignment]  # a mapped class's table is a Table
_COLUMNS = [c.name for c in _table.columns if c.name != "id"]
_VALUES = operator.attrgetter(*_COLUMNS)  # a NewAlert's values in that order, as one tuple
_TIME_AT = [i for i, c in enumerate(_COLUMNS) if isinstance(_table.c[c].type, UTCDateTime)]
_JSON_AT = [i for i, c in enumerate(_COLUMNS) if isinstance(_table.c[c].type, JSON)]
# Python's sqlite3 binds None through its adapter lookup: 0.6 us a value here, four times a string and
# fifteen times an integer. A new row's nullable text and time columns are bound 0 for None instead,
# made NULL by the statement (`NULLIF(?, 0)`: a bound integer never equals a text value).
_NULL_AT = [
    i for i, c in enumerate(_COLUMNS) if _table.c[c].nullable and not isinstance(_table.c[c].type, Integer)
]
_ROW = "(" + ", ".join("NULLIF(?, 0)" if i in _NULL_AT else "?" for i in range(len(_COLUMNS))) + ")"

_SILENCES = "SELECT id, kind, matchers FROM silences WHERE starts_at <= ? AND ends_at > ? ORDER BY id"
_GROUPS = (
    "SELECT g.id, g.incident_id, g.told_at, i.status, i.severity"
    " FROM alert_groups g JOIN incidents i ON i.id = g.incident_id"
    " WHERE g.service = ? AND g.group_key = ? AND g.last_alert_at >= ?"
    " ORDER BY g.id DESC LIMIT 5"
)
_INSERT_RECORDS = (
    f"INSERT INTO alerts ({', '.join(_COLUMNS)}) SELECT {', '.join(_COLUMNS)}"
    " FROM json_populate_recordset(null::alerts, ?) RETURNING id, dedup_key"
)
_REPEAT = "UPDATE alerts SET count = count + ?, last_seen_at = ?, ends_at = COALESCE(?, ends_at) WHERE id = ?"
# PostgreSQL: every re-send of a batch in one statement, its rows as arrays (one statement per row, even
# pipelined, cost the server an executor start each).
_REPEAT_ALL = (
    "UPDATE alerts AS a SET count = a.count + r.n, last_seen_at = ?, ends_at = COALESCE(r.ends, a.ends_at)"
    " FROM unnest(?::bigint[], ?::int[], ?::timestamptz[]) AS r(id, n, ends) WHERE a.id = r.id"
)
_LOCK = "SELECT pg_advisory_xact_lock_shared(hashtextextended(?, 0))"
_GROUP_BUMP = "UPDATE alert_groups SET last_alert_at = ?, alert_count = alert_count + ? WHERE id = ?"


@dataclass(slots=True)
class _Group:
    id: int
    incident_id: int
    severity: str
    added: int = 0


class NotForThisLane(Exception):
    """The batch needs the full path."""


class Seen:
    """PostgreSQL: the dedup keys this process's lane has lately written, by integration. Only a guess
    of what a batch holds: one with none of these keys is likely all new alerts, and reads its groups in
    the trip of its lookup (`_plan`), a round trip fewer; if some were open after all, the result is the
    same. Bounded: forgotten all at once past LIMIT keys."""

    LIMIT = 200_000

    def __init__(self) -> None:
        self.keys: dict[int, set[str]] = {}
        self.size = 0

    def any_of(self, integration_id: int, keys: Sequence[str]) -> bool:
        known = self.keys.get(integration_id)
        return known is not None and not known.isdisjoint(keys)

    def add(self, integration_id: int, keys: Sequence[str]) -> None:
        known = self.keys.setdefault(integration_id, set())
        before = len(known)
        known.update(keys)
        self.size += len(known) - before
        if self.size > self.LIMIT:
            self.keys.clear()
            self.size = 0


_seen: weakref.WeakKeyDictionary[AsyncEngine, Seen] = weakref.WeakKeyDictionary()


def seen_by(engine: AsyncEngine) -> Seen:
    """The keys this process's lane has lately written to the database behind `engine`."""
    return _seen.setdefault(engine, Seen())


def open_among(integration_id: int, keys: Sequence[str], extra: str = "") -> Step:
    """PostgreSQL: the open alerts of one integration among `keys` (id, dedup key, incident id, then the
    `extra` columns), as one array parameter and one index probe per key, whatever the table's
    statistics say (with none, or stale ones, the planner scanned every open alert of the integration
    for `dedup_key = ANY(...)`: 13 ms at 54,000). SQLite has the open alerts' map (`openkeys`)."""
    columns = f"id, dedup_key, incident_id{', ' + extra if extra else ''}"
    return Step(
        "SELECT a.* FROM unnest(?::text[]) AS k(key) CROSS JOIN LATERAL"
        f" (SELECT {columns} FROM alerts"
        "  WHERE integration_id = ? AND dedup_key = k.key AND status != 'resolved' LIMIT 1) a",
        [list(keys), integration_id],
    )


async def apply(
    db: Database,
    clock: Clock,
    policy: Policy,
    batches: Sequence[tuple[IntegrationInfo, Sequence[Signal]]],
    new_alert: Callable[[Policy, IntegrationInfo, Signal, datetime], NewAlert],
) -> list[list[Outcome]] | None:
    """What became of each (integration, signals) batch of a group commit, written and committed in a
    transaction of its own; or None, with nothing written.

    `new_alert(policy, integration, signal, now)` builds a NewAlert exactly as the full path does.
    The work is a plan (`_plan`) that `Raw.drive` runs: on SQLite the whole of it, reads, decisions,
    writes and the commit, in one go (on the event loop's thread, unless the batch is big); on
    PostgreSQL a pipeline per trip.
    """
    if any(s.action != "trigger" for _, signals in batches for s in signals):
        return None
    now = clock.now()
    async with db.raw() as raw:
        found = openkeys.of(db.engine) if raw.sqlite else None
        if found is not None:
            await found.ready(raw)
        seen = seen_by(db.engine) if found is None else None

        def plan() -> Plan[list[list[Outcome]]]:
            plans = [
                _plan(raw, found, policy, integration, signals, new_alert, now, i == len(batches) - 1, seen)
                for i, (integration, signals) in enumerate(batches)
            ]
            return _each(plans) if found is None else found.caught_up(_each(plans))

        try:
            small = sum(len(signals) for _, signals in batches) <= SMALL
            done = await raw.drive(plan, commit=True, small=small)
        except NotForThisLane:
            return None
        if seen is not None:
            for integration, signals in batches:
                seen.add(integration.id, [s.dedup_key for s in signals])
        if found is not None:  # committed: the map takes what it opened without reading it back
            found.opened(
                found.caught_at,
                [
                    (integration.id, o.dedup_key, o.alert_id)
                    for (integration, _), outcomes in zip(batches, done, strict=True)
                    for o in outcomes
                    if o.result == "opened" and o.alert_id is not None
                ],
            )
        return done


def _each(plans: list[Plan[list[Outcome]]]) -> Plan[list[list[Outcome]]]:
    done = []
    for plan in plans:
        done.append((yield from plan))
    return done


def _plan(
    raw: Raw,
    found: openkeys.OpenKeys | None,
    policy: Policy,
    integration: IntegrationInfo,
    signals: Sequence[Signal],
    new_alert: Callable[[Policy, IntegrationInfo, Signal, datetime], NewAlert],
    now: datetime,
    final: bool = True,
    seen: Seen | None = None,
) -> Plan[list[Outcome]]:
    """One integration's signals; `final` when its writes are the transaction's last trip. With `seen`
    (PostgreSQL) a batch of keys it has none of reads its groups in its lookup's trip (`_guessed`)."""
    keys = list(dict.fromkeys(s.dedup_key for s in signals))
    known: dict[str, tuple[int, int | None]] = {}
    guessed: dict[str, NewAlert] = {}  # each key's new alert, built before the lookup
    ahead: list[tuple[str, str]] = []  # the groups read in the lookup's trip
    if found is not None:  # SQLite: the open alerts' map, checked against the database
        lookups = [found.lookup(integration.id, keys[i : i + CHUNK]) for i in range(0, len(keys), CHUNK)]
    else:  # one array parameter: PostgreSQL plans it several times faster than a long IN list
        lookups = [open_among(integration.id, keys)]
    if seen is not None and not seen.any_of(integration.id, keys):
        for signal in signals:
            if signal.dedup_key not in guessed:
                guessed[signal.dedup_key] = new_alert(policy, integration, signal, now)
        ahead = sorted({(alert.service or "", alert.group_key) for alert in guessed.values()})
        lookups += _attach_steps(raw, policy, ahead, now)
    read = yield lookups
    for rows in read[:1] if ahead else read:
        for id_, key, incident_id in rows:
            known[key] = (id_, incident_id)
    repeats: dict[int, Repeat] = {}
    pending: dict[str, NewAlert] = {}
    order: list[tuple[str, str, NewAlert | None, int | None, int | None]] = []
    for signal in signals:
        key = signal.dedup_key
        fresh = pending.get(key)
        if fresh is not None:
            fresh.count += 1
            fresh.ends_at = signal.ends_at or fresh.ends_at
            order.append((key, "repeated", fresh, None, None))
        elif key in known:
            id_, incident_id = known[key]
            repeats.setdefault(id_, Repeat()).seen(signal.ends_at)
            order.append((key, "repeated", None, id_, incident_id))
        else:
            pending[key] = fresh = guessed.get(key) or new_alert(policy, integration, signal, now)
            order.append((key, "opened", fresh, None, None))
    new = list(pending.values())
    groups: list[_Group] = []
    if new:
        # In order: concurrent transactions lock the groups they share in the same order (no deadlock).
        wanted = sorted({(alert.service or "", alert.group_key) for alert in new})
        if ahead:
            attached = _guessed(ahead, read[1:], wanted)
        else:
            attached = yield _attach_steps(raw, policy, wanted, now)
        groups = _attach(raw, policy, new, wanted, attached, now)
    at = raw.time(now)
    writes = [_repeat(raw, repeats, at)] if repeats else []
    # The new rows, in the same trip as the other writes, returning their ids; then the groups' counts,
    # whose row locks concurrent commits wait for: held from here to the commit only.
    writes.extend(_insert(raw, new[i : i + CHUNK]) for i in range(0, len(new), CHUNK))
    if groups:
        writes.append(Step(_GROUP_BUMP, [(at, g.added, g.id) for g in groups], True))
    by_key = {a.dedup_key: a for a in new}
    for rows in (yield Last(writes) if final else writes):
        for id_, key in rows:  # only the inserts return rows: (id, dedup key)
            by_key[key].id = id_
    out: list[Outcome] = []
    for key, result, fresh, id_, incident_id in order:
        if fresh is not None:
            out.append(Outcome(key, result, fresh.id, fresh.incident_id))
        else:
            out.append(Outcome(key, result, id_, incident_id))
    return out


def _repeat(raw: Raw, repeats: dict[int, Repeat], at: Any) -> Step:
    """The re-sends of open alerts: each one's count bumped, seen `at`, and its expiry moved on."""
    ends = {e: raw.time(e) for e in {r.ends_at for r in repeats.values()}}  # re-sends share a few expiries
    if raw.sqlite:
        return Step(_REPEAT, [(r.count, at, ends[r.ends_at], id_) for id_, r in repeats.items()], True)
    rows = sorted(repeats.items())  # by id: concurrent transactions lock the rows they share in order
    counts = [r.count for _, r in rows]
    return Step(_REPEAT_ALL, [at, [id_ for id_, _ in rows], counts, [ends[r.ends_at] for _, r in rows]])


def _attach_steps(raw: Raw, policy: Policy, wanted: list[tuple[str, str]], now: datetime) -> list[Step]:
    """The silences in force, and the open groups of these (service, group key) pairs."""
    since = raw.time(now - policy.alerting.group_window)
    steps = [Step(_SILENCES, [raw.time(now), raw.time(now)])]
    for service, key in wanted:
        # PostgreSQL: the group's lock shared (the full path takes it alone: it reads a group's counts and
        # may open its incident) and the incident's row shared (nobody closes it or changes its severity
        # meanwhile). Lane commits on one group then run at once, each adding to the group's count in
        # its last statement, rather than one after another (100 new alerts a request: up to 1.6x).
        if not raw.sqlite:
            steps.append(Step(_LOCK, [f"alert-group:{service}:{key}"]))
        steps.append(Step(_GROUPS if raw.sqlite else _GROUPS + " FOR SHARE OF i", [service, key, since]))
    return steps


def _guessed(ahead: list[tuple[str, str]], read: Rows, wanted: list[tuple[str, str]]) -> Rows:
    """What `_attach_steps(wanted)` would have read, from what `_attach_steps(ahead)` read (PostgreSQL:
    the silences, then a group's lock and its rows, a group after another), `wanted` being among `ahead`
    (the groups of the alerts that were new after all)."""
    at = {group: i for i, group in enumerate(ahead)}
    out = [read[0]]
    for group in wanted:
        out += read[1 + 2 * at[group] : 3 + 2 * at[group]]
    return out


def _attach(
    raw: Raw,
    policy: Policy,
    new: list[NewAlert],
    wanted: list[tuple[str, str]],
    results: list[list[tuple[Any, ...]]],
    now: datetime,
) -> list[_Group]:
    """Each new alert's open group, if every one has one that needs no incident logic; else raise."""
    in_force = [silences.Active(id_, kind, raw.read_json(matchers)) for id_, kind, matchers in results[0]]
    found = results[1:] if raw.sqlite else results[2::2]
    groups = {gk: _open_group(raw, rows, now) for gk, rows in zip(wanted, found, strict=True)}
    outage = policy.alerting.complete_outage_severity
    for alert in new:
        if silences.muting(in_force, alert.labels) is not None or policy.alerting.inhibits(alert.labels):
            raise NotForThisLane  # a muted alert is noted on the timeline; an inhibit rule may mute it
        group = groups[(alert.service or "", alert.group_key)]
        rank = policy.severity(group.severity).rank
        if policy.severity(alert.severity).rank < rank:
            raise NotForThisLane  # the incident's severity rises
        if alert.component and outage and policy.severity(outage).rank < rank:
            raise NotForThisLane  # this may complete an outage: the full path checks
        alert.incident_id = group.incident_id
        group.added += 1
    return list(groups.values())


def _open_group(raw: Raw, rows: list[tuple[Any, ...]], now: datetime) -> _Group:
    """The newest of a group's rows whose incident is open, if the timeline is not due a note."""
    for id_, incident_id, told_at, status, severity in rows:
        if not is_open(status):
            continue
        told = raw.read_time(told_at)
        if told is None or now - told >= grouping.STORM_NOTE_EVERY:
            raise NotForThisLane  # the timeline is due a note of this storm
        return _Group(id_, incident_id, severity)
    raise NotForThisLane  # no open incident for this group: one opens


def _encoded(raw: Raw, alerts: list[NewAlert]) -> list[Any]:
    """The new alerts' values, row after row in `_COLUMNS` order, as SQLite stores them."""
    times: dict[datetime | None, Any] = {}  # a batch shares a few instants: each encoded once
    values: list[Any] = []
    dumps = orjson.dumps  # `raw.json`, without its two calls a value
    for alert in alerts:
        row = list(_VALUES(alert))
        for i in _TIME_AT:
            instant = row[i]
            if instant not in times:
                times[instant] = raw.time(instant)
            row[i] = times[instant]
        try:
            for i in _JSON_AT:
                row[i] = dumps(row[i]).decode()
        except TypeError:  # what orjson refuses (integers past 64 bits, keys not strings)
            for i in _JSON_AT:
                row[i] = raw.json(getattr(alert, _COLUMNS[i]))
        for i in _NULL_AT:
            if row[i] is None:
                row[i] = 0  # NULL, as the statement reads it
        values += row
    return values


def _insert(raw: Raw, alerts: list[NewAlert]) -> Step:
    """SQLite: one multi-row INSERT. PostgreSQL: the rows as one JSON parameter, unpacked by the server
    (`json_populate_recordset`): a tenth of the client-side cost of binding every value (32 rows in about
    1 ms against 2.5-4 ms here; 500 in 10 ms, where even COPY took about 40 ms)."""
    if raw.sqlite:
        values = ", ".join([_ROW] * len(alerts))
        return Step(
            f"INSERT INTO alerts ({', '.join(_COLUMNS)}) VALUES {values} RETURNING id, dedup_key",
            _encoded(raw, alerts),
        )
    records = raw.records([{name: getattr(alert, name) for name in _COLUMNS} for alert in alerts])
    return Step(_INSERT_RECORDS, [records])
