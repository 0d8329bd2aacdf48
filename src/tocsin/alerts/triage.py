"""Finding one's way in an alert storm: alerts filtered by label matchers, counted by a label's value
(and by status), how many open alerts each silence mutes now; and resolving stale ones by hand.

A filter's matchers are the silences' own (`matchers.matches`, compiled: `matchers.matching`): it shows exactly the alerts a silence
with the same matchers would mute. An equality matcher on a value narrows the rows in SQL (the label
read out of the JSON column, on both databases); every matcher is then checked here, on the newest
rows first and on at most `SCAN` of them, so that a filter that matches little of a long history still
answers at once, and says that it stopped (`Found.cut`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Select, Text, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.alerts import service
from tocsin.alerts.matchers import matching
from tocsin.alerts.models import OPEN_STATUSES, Alert, label_value
from tocsin.core.clock import Clock
from tocsin.core.errors import InvalidInput
from tocsin.db.engine import Database, transient
from tocsin.policy.models import Policy

HISTORY = 100_000  # alerts counted at most by a count of the history (SQLite: 3.5 s for 2,000,000)
STATUSES = ("open", "firing", "acknowledged", "resolved", "all")
SCAN = 20_000  # rows a filter looks at, at most
_FIRST_CHUNK = 500  # candidates read first; each next read takes four times as many
_FEW = 2_000  # rows in a status that are found through its index and sorted; past that, read by id
MAX_ID = 2**31 - 1  # alert ids are 32-bit integers (PostgreSQL refuses a larger one in a comparison)
LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Found:
    alerts: list[Alert]  # newest first
    cut: bool  # stopped after SCAN rows: older alerts may match too
    # Where the next page starts (`before`): older alerts may match (a full page, or a cut scan: then
    # from the last row it read); None when there are none.
    next_before: int | None = None


def _of(query: Select[Any], status: str, incident_id: int | None, by_status: bool = True) -> Select[Any]:
    """Rows in `status` (of one incident, if given). `by_status`: found through the index of statuses
    (every such row, then sorted if the query is ordered); else the status is only checked on each
    row read in another order (`status || ''` is no index lookup, on either database)."""
    column = Alert.status if by_status else Alert.status.concat("")
    if status == "open":
        query = query.where(column.in_(OPEN_STATUSES))
    elif status != "all":
        query = query.where(column == status)
    if incident_id is not None:
        query = query.where(Alert.incident_id == incident_id)
    return query


async def _newest(
    session: AsyncSession, query: Select[Any], status: str, incident_id: int | None
) -> Select[Any]:
    """`query` (over alerts, newest first) restricted to `status` and the incident, the cheap way round.

    One incident's rows come through its index, which holds them in id order (SQLite's index entries
    end with the row id; PostgreSQL's planner walks it backward): nothing to sort. Otherwise, if few
    rows are in `status`, through the index of statuses, then sorted; if many (a storm's open alerts, a
    long history's resolved ones), by id from the newest, each row's status checked, which stops as soon
    as enough are found. (SQLite took the index of statuses and sorted 50,000 open alerts for every
    page of 1,000: 60-90 ms each.)"""
    if incident_id is not None or status == "all":
        return _of(query, status, incident_id, by_status=False)
    few = _of(select(Alert.id), status, None).limit(_FEW + 1).subquery()
    count = await session.scalar(select(func.count()).select_from(few))
    return _of(query, status, None, by_status=int(count or 0) <= _FEW)


def _exact(matcher: dict[str, Any]) -> bool:
    """Whether SQL can apply the matcher (label = a value that is not empty)."""
    return bool(matcher.get("is_equal", True) and not matcher.get("is_regex") and matcher["value"])


async def _candidates(
    session: AsyncSession, status: str, incident_id: int | None, matchers: list[dict[str, Any]]
) -> Select[Any]:
    """(id, labels) of the rows that may match, newest first: narrowed by the exact matchers."""
    # The labels as their JSON text, read here by orjson: through the column's own type (the standard
    # library's json) a row took half as long again.
    labels: Any = cast(Alert.labels, Text)
    query = await _newest(session, select(Alert.id, labels).order_by(Alert.id.desc()), status, incident_id)
    for m in matchers:
        if _exact(m):
            query = query.where(label_value(m["name"]) == m["value"])
    return query


async def _scan(
    session: AsyncSession,
    candidates: Select[Any],
    matchers: list[dict[str, Any]],
    scan: int,
    take: Callable[[int, dict[str, Any]], bool],
    before: int | None = None,
) -> int | None:
    """Give `take(id, labels)` each candidate (older than `before`, if given) whose labels satisfy every
    matcher, newest first, until it answers False or `scan` rows were looked at. If it stopped there
    with candidates left (cut), the id of the last row read; else None."""
    wanted = matching(matchers)
    scanned, chunk = 0, _FIRST_CHUNK
    while True:
        query = candidates if before is None else candidates.where(Alert.id < before)
        if scanned >= scan:
            return before if (await session.execute(query.limit(1))).first() is not None else None
        rows = (await session.execute(query.limit(min(chunk, scan - scanned)))).all()
        if not rows:
            return None
        scanned += len(rows)
        chunk *= 4  # few trips when little matches: each one may read (PostgreSQL: sort) every candidate
        for id_, text in rows:
            before = id_
            labels = orjson.loads(text) if text else {}
            if wanted(labels) and not take(id_, labels):
                return None


def alert_id(text: str) -> int | None:
    """An alert id from a console form or URL, or None if the text is not one."""
    return (
        int(text)
        if text.isascii() and text.isdigit() and 0 < len(text) <= 10 and 0 < int(text) <= MAX_ID
        else None
    )


async def filtered(
    session: AsyncSession,
    status: str,
    matchers: list[dict[str, Any]],
    limit: int,
    incident_id: int | None = None,
    scan: int | None = None,
    before: int | None = None,
) -> Found:
    """The newest `limit` alerts in `status` (of one incident, if given; older than `before`, if given)
    whose labels satisfy every matcher."""
    if not matchers:
        query = select(Alert).order_by(Alert.id.desc()).limit(limit)
        if before is not None:
            query = query.where(Alert.id < before)
        rows = list(await session.scalars(await _newest(session, query, status, incident_id)))
        return Found(rows, cut=False, next_before=rows[-1].id if len(rows) == limit else None)
    ids: list[int] = []

    def take(id_: int, _: dict[str, Any]) -> bool:
        ids.append(id_)
        return len(ids) < limit

    candidates = await _candidates(session, status, incident_id, matchers)
    stopped = await _scan(session, candidates, matchers, scan or SCAN, take, before)
    found = []
    if ids:
        found = list(await session.scalars(select(Alert).where(Alert.id.in_(ids)).order_by(Alert.id.desc())))
    full = ids[-1] if len(ids) == limit else None
    return Found(found, cut=stopped is not None, next_before=stopped if stopped is not None else full)


async def counted_by(
    session: AsyncSession,
    label: str,
    status: str = "open",
    incident_id: int | None = None,
    limit: int = 12,
    matchers: list[dict[str, Any]] | None = None,
    scan: int | None = None,
) -> list[tuple[str, int]]:
    """The most common values of a label among the alerts in `status` (of one incident, if given, and
    matching the matchers, if any), with how many alerts have each, most first; "" stands for alerts
    without the label. Counted by the database (resolved or all alerts of every incident: among the
    newest `HISTORY` alerts), unless a matcher needs checking here: then among the `scan` newest
    candidates."""
    if not LABEL_NAME.fullmatch(label):
        raise InvalidInput(f"{label!r} is not a label name", field="by")
    matchers = matchers or []
    if all(_exact(m) for m in matchers):
        history = incident_id is None and status in ("resolved", "all")  # a long one: its newest part
        query = _of(select(label_value(label).label("value")), status, incident_id, by_status=not history)
        if history:  # read by id, each row's status checked
            newest = await session.scalar(select(func.max(Alert.id)))
            query = query.where(Alert.id > (newest or 0) - HISTORY)
        for m in matchers:
            query = query.where(label_value(m["name"]) == m["value"])
        values = query.subquery()
        count = func.count().label("n")
        grouped = (
            select(values.c.value, count).group_by(values.c.value).order_by(count.desc(), values.c.value)
        )
        return [(value or "", int(n)) for value, n in await session.execute(grouped.limit(limit))]
    counts: Counter[str] = Counter()

    def take(_: int, labels: dict[str, Any]) -> bool:
        counts[str(labels.get(label, ""))] += 1
        return True

    candidates = await _candidates(session, status, incident_id, matchers)
    await _scan(session, candidates, matchers, scan or SCAN, take)
    return sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))[:limit]


async def muting(session: AsyncSession) -> dict[str, int]:
    """How many open alerts each silence mutes now, by what alerts record of it (`kind:id`, as
    `Alert.muted_by`), read through the partial index of muted alerts."""
    rows = await session.execute(
        select(Alert.muted_by, func.count())
        .where(Alert.muted_by.is_not(None), Alert.status.in_(OPEN_STATUSES))
        .group_by(Alert.muted_by)
    )
    return {str(silence): int(n) for silence, n in rows}


async def for_incident(session: AsyncSession, incident_id: int, limit: int = 500) -> list[Alert]:
    query = select(Alert).where(Alert.incident_id == incident_id).order_by(Alert.id.desc()).limit(limit)
    return list(await session.scalars(query))


async def open_counts(session: AsyncSession) -> dict[str, int]:
    """How many alerts are open in each status, and how many of those are muted ("muted"); resolved
    ones are not counted (all of history: a scan, for a page that only wants what is on fire)."""
    rows = await session.execute(
        select(Alert.status, func.count()).where(Alert.status.in_(OPEN_STATUSES)).group_by(Alert.status)
    )
    counts = {status: int(n) for status, n in rows}
    muted = select(func.count()).where(Alert.muted_by.is_not(None), Alert.status.in_(OPEN_STATUSES))
    counts["muted"] = int(await session.scalar(muted) or 0)
    return counts


async def counts_for_incident(session: AsyncSession, incident_id: int) -> dict[str, int]:
    """How many of the incident's alerts are in each status."""
    rows = await session.execute(
        select(Alert.status, func.count()).where(Alert.incident_id == incident_id).group_by(Alert.status)
    )
    return {status: int(n) for status, n in rows}


async def resolve_by_hand(
    session: AsyncSession, clock: Clock, policy: Policy, ids: Sequence[int], actor: str
) -> list[Alert]:
    """Resolve these alerts, those still open, for a person (a stale alert whose sender will never say it
    cleared, the alerts of a host that is gone). Each incident's timeline says who, and how many are
    still open; the incident itself is left to its people. If a sender fires one again, it is a new alert."""
    query = (
        select(Alert)
        .where(Alert.id.in_(sorted(set(ids))), Alert.status.in_(OPEN_STATUSES))
        .order_by(Alert.id)
        .with_for_update()
    )
    rows = list(await session.scalars(query))
    now = clock.now()
    for alert in rows:
        alert.status, alert.resolved_at = "resolved", now
    await service.after_resolve(session, clock, policy, rows, actor, by_hand=True)
    return rows


async def resolve(db: Database, clock: Clock, policy: Policy, ids: Sequence[int], actor: str) -> list[int]:
    """`resolve_by_hand` in a transaction of its own, run again if it met a concurrent one (PostgreSQL:
    a deadlock with an ingest commit on the same alerts); the ids it resolved."""
    attempt = 1
    while True:
        try:
            async with db.transaction() as session:
                return [row.id for row in await resolve_by_hand(session, clock, policy, ids, actor)]
        except Exception as exc:
            if attempt == 3 or not transient(exc):
                raise
            attempt += 1
