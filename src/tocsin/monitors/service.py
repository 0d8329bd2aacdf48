"""The only code that writes the monitor tables: results, state, the runner lease, aggregates, pruning."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import case, delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.core.errors import NotFound
from tocsin.monitors.models import MonitorDaily, MonitorHourly, MonitorLease, MonitorResult, MonitorState
from tocsin.policy.models import Policy
from tocsin.policy.monitors import MonitorSpec

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
RAW_RETENTION = timedelta(days=7)
HOURLY_RETENTION = timedelta(days=400)
DAILY_RETENTION = timedelta(days=5 * 366)
# An hour is aggregated this long after it ends, so a check started just before the hour closed (and
# written when it finished, up to its timeout later) is counted in it.
CLOSE_GRACE = timedelta(minutes=2)
PRUNE_BATCH = 20_000  # rows per prune call: a long backlog drains over a few rounds, never one huge lock
UPTIME_WINDOWS = {"24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
DEFAULT_INTERVAL = timedelta(seconds=30)

Status = Literal["unknown", "up", "down"]


def floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def floor_day(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


# ------------------------------------------------------------------------------------- state machine


@dataclass
class Standing:
    """A monitor's streak and status; thresholds turn streaks into up and down (Gatus' semantics)."""

    status: Status = "unknown"
    changed_at: datetime | None = None
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    failing_since: datetime | None = None
    alerted: bool = False

    def observe(
        self, ok: bool, at: datetime, failure_threshold: int, success_threshold: int
    ) -> Status | None:
        """Count one result; return the new status if it changed."""
        went: Status | None = None
        if ok:
            self.consecutive_successes += 1
            self.consecutive_failures = 0
            self.failing_since = None
            if self.status == "unknown" or (
                self.status == "down" and self.consecutive_successes >= success_threshold
            ):
                went = "up"
        else:
            self.consecutive_failures += 1
            self.consecutive_successes = 0
            self.failing_since = self.failing_since or at
            if self.status != "down" and self.consecutive_failures >= failure_threshold:
                went = "down"
        if went is not None:
            self.status, self.changed_at = went, at
        return went


@dataclass
class Observation:
    """One finished check, as it is recorded."""

    monitor: str
    at: datetime
    ok: bool
    status_code: int | None
    latency_ms: float | None
    error: str | None
    failed: str | None
    standing: Standing = field(default_factory=Standing)


def _standing(row: MonitorState) -> Standing:
    return Standing(
        status=row.status,  # type: ignore[arg-type]
        changed_at=row.changed_at,
        consecutive_failures=row.consecutive_failures,
        consecutive_successes=row.consecutive_successes,
        failing_since=row.failing_since,
        alerted=row.alerted,
    )


async def standings(session: AsyncSession) -> dict[str, Standing]:
    """Every monitor's last recorded standing, to resume from after a restart or a change of runner."""
    return {row.monitor: _standing(row) for row in await session.scalars(select(MonitorState))}


async def record(session: AsyncSession, observations: Sequence[Observation]) -> None:
    """Write a batch of results and the standings they left behind."""
    if not observations:
        return
    await session.execute(
        insert(MonitorResult),
        [
            {
                "monitor": o.monitor,
                "at": o.at,
                "ok": o.ok,
                "status_code": o.status_code,
                "latency_ms": o.latency_ms,
                "error": o.error[:500] if o.error else None,
                "failed": o.failed,
            }
            for o in observations
        ],
    )
    names = sorted({o.monitor for o in observations})
    rows = {
        r.monitor: r
        for r in await session.scalars(select(MonitorState).where(MonitorState.monitor.in_(names)))
    }
    for o in observations:  # in order: the last observation of a monitor wins
        row = rows.get(o.monitor)
        if row is None:
            row = MonitorState(monitor=o.monitor, hourly_until=floor_hour(o.at), daily_until=floor_day(o.at))
            session.add(row)
            rows[o.monitor] = row
        s = o.standing
        row.status, row.changed_at, row.failing_since = s.status, s.changed_at, s.failing_since
        row.consecutive_failures, row.consecutive_successes = s.consecutive_failures, s.consecutive_successes
        row.alerted = s.alerted
        row.last_checked_at, row.last_ok, row.last_status_code = o.at, o.ok, o.status_code
        row.last_latency_ms, row.last_error, row.last_failed = o.latency_ms, o.error, o.failed
        if row.last_error is not None:
            row.last_error = row.last_error[:500]


async def set_alerted(session: AsyncSession, alerted: dict[str, bool]) -> None:
    """Note which monitors have an open alert, once the alerts domain has committed the signal."""
    for row in await session.scalars(select(MonitorState).where(MonitorState.monitor.in_(sorted(alerted)))):
        row.alerted = alerted[row.monitor]


async def alerted_monitors(session: AsyncSession) -> set[str]:
    """Monitors whose alert is open: the ones to resolve if they leave the policy."""
    return set(await session.scalars(select(MonitorState.monitor).where(MonitorState.alerted.is_(True))))


# ------------------------------------------------------------------------------------------- the lease


async def take_lease(
    session: AsyncSession, holder: str, now: datetime, ttl: timedelta, name: str = "runner"
) -> bool:
    """Take or renew the lease to run monitors; False while another live holder has it."""
    row = await session.get(MonitorLease, name, with_for_update=True)
    if row is None:
        try:
            async with session.begin_nested():
                session.add(MonitorLease(name=name, holder=holder, expires_at=now + ttl))
        except IntegrityError:
            return False  # another process created it first
        return True
    if row.holder != holder and row.expires_at > now:
        return False
    row.holder, row.expires_at = holder, now + ttl
    return True


async def release_lease(session: AsyncSession, holder: str, name: str = "runner") -> None:
    await session.execute(
        delete(MonitorLease).where(MonitorLease.name == name, MonitorLease.holder == holder)
    )


# ---------------------------------------------------------------------------------------- aggregates

_RATIO = math.log(1.2)  # histogram buckets 20% wide: percentiles of merged hours within ~10%
_TOP_BUCKET = 100  # 1.2**100 ms is weeks: everything slower shares the last bucket


def _bucket(ms: float) -> int:
    return 0 if ms <= 1 else min(math.ceil(math.log(ms) / _RATIO), _TOP_BUCKET)


def _bucket_ms(bucket: int) -> float:
    return round(math.exp((bucket - 0.5) * _RATIO), 3) if bucket else 1.0


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not values:
        return None
    return values[max(math.ceil(q * len(values)) - 1, 0)]


def _histogram_percentile(counts: Counter[int], q: float) -> float | None:
    total = sum(counts.values())
    if not total:
        return None
    rank, seen = max(math.ceil(q * total), 1), 0
    for bucket in sorted(counts):
        seen += counts[bucket]
        if seen >= rank:
            return _bucket_ms(bucket)
    return None  # unreachable: the ranks add up to total


@dataclass
class _Tally:
    checks: int = 0
    ok_checks: int = 0
    up_seconds: float = 0.0
    observed_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)


async def recorded_monitors(session: AsyncSession) -> list[str]:
    """The names of every monitor that has recorded a result, removed ones included."""
    return list(await session.scalars(select(MonitorState.monitor).order_by(MonitorState.monitor)))


async def rollup(
    session: AsyncSession,
    now: datetime,
    intervals: dict[str, timedelta],
    monitors: Sequence[str],
    max_hours: int = 48,
) -> int:
    """Aggregate each closed hour into monitor_hourly and each closed day into monitor_daily; returns rows."""
    closed = floor_hour(now - CLOSE_GRACE)
    written = 0
    query = select(MonitorState).where(MonitorState.monitor.in_(monitors)).order_by(MonitorState.monitor)
    for state in await session.scalars(query.with_for_update()):
        if state.hourly_until < closed:
            # Each result stands for the time until the next one, but not longer than two intervals:
            # a gap (Tocsin was down) counts as unobserved, not as up or down.
            cap = 2 * intervals.get(state.monitor, DEFAULT_INTERVAL)
            end = min(closed, state.hourly_until + max_hours * HOUR)
            written += await _hours(session, state, end, cap)
        while state.daily_until + DAY <= state.hourly_until:
            written += await _day(session, state)
    return written


async def _hours(session: AsyncSession, state: MonitorState, end: datetime, cap: timedelta) -> int:
    start, name = state.hourly_until, state.monitor
    before = await session.execute(
        select(MonitorResult.at, MonitorResult.ok)
        .where(MonitorResult.monitor == name, MonitorResult.at < start, MonitorResult.at >= start - cap)
        .order_by(MonitorResult.at.desc())
        .limit(1)
    )
    rows = await session.execute(
        select(MonitorResult.at, MonitorResult.ok, MonitorResult.latency_ms)
        .where(MonitorResult.monitor == name, MonitorResult.at >= start, MonitorResult.at < end)
        .order_by(MonitorResult.at, MonitorResult.id)
    )
    results = list(rows.all())
    points = [(r.at, r.ok) for r in before.all()] + [(r.at, r.ok) for r in results]
    hours: dict[datetime, _Tally] = {}
    for i, (at, ok) in enumerate(points):
        until = min(points[i + 1][0] if i + 1 < len(points) else end, at + cap, end)
        moment = max(at, start)
        while moment < until:
            hour = floor_hour(moment)
            piece = min(until, hour + HOUR)
            tally = hours.setdefault(hour, _Tally())
            seconds = (piece - moment).total_seconds()
            tally.observed_seconds += seconds
            tally.up_seconds += seconds if ok else 0.0
            moment = piece
    for r in results:
        tally = hours.setdefault(floor_hour(r.at), _Tally())
        tally.checks += 1
        tally.ok_checks += int(r.ok)
        if r.latency_ms is not None:
            tally.latencies.append(r.latency_ms)
    rows_out = []
    for hour, t in sorted(hours.items()):
        t.latencies.sort()
        histogram = Counter(_bucket(ms) for ms in t.latencies)
        rows_out.append(
            {
                "monitor": name,
                "hour": hour,
                "checks": t.checks,
                "ok_checks": t.ok_checks,
                "up_seconds": t.up_seconds,
                "observed_seconds": t.observed_seconds,
                "latency_p50": percentile(t.latencies, 0.50),
                "latency_p95": percentile(t.latencies, 0.95),
                "latency_p99": percentile(t.latencies, 0.99),
                "latency_histogram": sorted([b, c] for b, c in histogram.items()),
            }
        )
    if rows_out:
        await session.execute(insert(MonitorHourly), rows_out)
    state.hourly_until = end
    return len(rows_out)


async def _day(session: AsyncSession, state: MonitorState) -> int:
    day = state.daily_until
    state.daily_until = day + DAY
    hours = list(
        await session.scalars(
            select(MonitorHourly).where(
                MonitorHourly.monitor == state.monitor,
                MonitorHourly.hour >= day,
                MonitorHourly.hour < day + DAY,
            )
        )
    )
    if not hours:
        return 0
    merged: Counter[int] = Counter()
    for h in hours:
        merged.update({int(b): int(c) for b, c in h.latency_histogram})
    session.add(
        MonitorDaily(
            monitor=state.monitor,
            day=day,
            checks=sum(h.checks for h in hours),
            ok_checks=sum(h.ok_checks for h in hours),
            up_seconds=sum(h.up_seconds for h in hours),
            observed_seconds=sum(h.observed_seconds for h in hours),
            latency_p50=_histogram_percentile(merged, 0.50),
            latency_p95=_histogram_percentile(merged, 0.95),
            latency_p99=_histogram_percentile(merged, 0.99),
            latency_histogram=sorted([b, c] for b, c in merged.items()),
        )
    )
    return 1


async def prune(session: AsyncSession, now: datetime) -> int:
    """Delete raw results past RAW_RETENTION and aggregates past theirs; returns rows deleted."""
    deleted = 0
    for table, column, keep in (
        (MonitorResult, MonitorResult.at, RAW_RETENTION),
        (MonitorHourly, MonitorHourly.hour, HOURLY_RETENTION),
        (MonitorDaily, MonitorDaily.day, DAILY_RETENTION),
    ):
        if table is MonitorResult:
            old = select(MonitorResult.id).where(column < now - keep).limit(PRUNE_BATCH)
            result = await session.execute(delete(MonitorResult).where(MonitorResult.id.in_(old)))
        else:
            result = await session.execute(delete(table).where(column < now - keep))
        deleted += int(getattr(result, "rowcount", 0) or 0)
    return deleted


# -------------------------------------------------------------------------------------------- reading


@dataclass
class MonitorView:
    """A policy monitor with its recorded state and uptime ratios (None where nothing was observed)."""

    spec: MonitorSpec
    state: MonitorState | None
    uptime: dict[str, float | None]


async def overview(session: AsyncSession, policy: Policy, now: datetime) -> list[MonitorView]:
    """Every monitor of the policy with its state, last result and uptime over 24h, 7d and 30d."""
    names = [m.name for m in policy.monitors]
    states = {
        s.monitor: s
        for s in await session.scalars(select(MonitorState).where(MonitorState.monitor.in_(names)))
    }
    # The hours not yet aggregated count each result for one interval (checks are evenly spaced).
    fresh = await session.execute(
        select(
            MonitorResult.monitor,
            func.count(),
            func.sum(case((MonitorResult.ok.is_(True), 1), else_=0)),
        )
        .join(MonitorState, MonitorState.monitor == MonitorResult.monitor)
        .where(MonitorResult.monitor.in_(names), MonitorResult.at >= MonitorState.hourly_until)
        .group_by(MonitorResult.monitor)
    )
    interval = {m.name: m.interval.total_seconds() for m in policy.monitors}
    recent = {m: (int(n) * interval[m], int(up or 0) * interval[m]) for m, n, up in fresh.all()}
    uptimes: dict[str, dict[str, float | None]] = {name: {} for name in names}
    for label, span in UPTIME_WINDOWS.items():
        sums = await session.execute(
            select(
                MonitorHourly.monitor,
                func.sum(MonitorHourly.observed_seconds),
                func.sum(MonitorHourly.up_seconds),
            )
            .where(MonitorHourly.monitor.in_(names), MonitorHourly.hour >= floor_hour(now - span))
            .group_by(MonitorHourly.monitor)
        )
        totals = {m: (float(obs or 0), float(up or 0)) for m, obs, up in sums.all()}
        for name in names:
            observed, up = (
                a + b for a, b in zip(totals.get(name, (0.0, 0.0)), recent.get(name, (0.0, 0.0)), strict=True)
            )
            uptimes[name][label] = round(up / observed, 6) if observed > 0 else None
    return [MonitorView(m, states.get(m.name), uptimes[m.name]) for m in policy.monitors]


async def results(session: AsyncSession, policy: Policy, name: str, limit: int) -> list[MonitorResult]:
    """A monitor's latest raw results, newest first."""
    query = select(MonitorResult).where(MonitorResult.monitor == name)
    rows = list(
        await session.scalars(query.order_by(MonitorResult.at.desc(), MonitorResult.id.desc()).limit(limit))
    )
    if not rows and name not in {m.name for m in policy.monitors}:
        raise NotFound(f"no monitor {name!r}", field="name")
    return rows


async def aggregates(
    session: AsyncSession, policy: Policy, name: str, period: Literal["hourly", "daily"], since: datetime
) -> list[MonitorHourly] | list[MonitorDaily]:
    """A monitor's hourly or daily aggregates that start at or after `since`, oldest first."""
    if name not in {m.name for m in policy.monitors} and await session.get(MonitorState, name) is None:
        raise NotFound(f"no monitor {name!r}", field="name")
    if period == "hourly":
        hourly = select(MonitorHourly).where(MonitorHourly.monitor == name, MonitorHourly.hour >= since)
        return list(await session.scalars(hourly.order_by(MonitorHourly.hour)))
    daily = select(MonitorDaily).where(MonitorDaily.monitor == name, MonitorDaily.day >= floor_day(since))
    return list(await session.scalars(daily.order_by(MonitorDaily.day)))
