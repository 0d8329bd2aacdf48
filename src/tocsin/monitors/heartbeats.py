"""Heartbeats (dead-man's switches): the only code that writes `heartbeat_states`.

A job pings `/api/v1/heartbeats/{name}`; when no ping comes within its interval plus grace, an alert
opens through the built-in `heartbeat` integration, and the next ping resolves it. A heartbeat that has
never pinged is `new` and raises nothing, so declaring one ahead of the job's first run is safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.alerts import integrations
from tocsin.alerts import service as alerts
from tocsin.alerts.signals import Outcome, Signal
from tocsin.core.clock import Clock
from tocsin.core.durations import format_duration
from tocsin.monitors.detector_models import HeartbeatState, locked_rows
from tocsin.policy.detectors import HeartbeatSpec
from tocsin.policy.models import Policy

KIND = "heartbeat"


def dedup_key(name: str) -> str:
    return f"heartbeat:{name}"


def spec_of(policy: Policy, name: str) -> HeartbeatSpec | None:
    return next((spec for spec in policy.heartbeats if spec.name == name), None)


def _whole(delta: timedelta) -> str:
    return format_duration(timedelta(seconds=max(int(delta.total_seconds()), 0)))


async def emit(
    session: AsyncSession, clock: Clock, policy: Policy, kind: str, signals: Sequence[Signal]
) -> list[Outcome]:
    """Apply a detector's signals through its built-in integration, in the caller's transaction."""
    if not signals:
        return []
    integration = await integrations.builtin(session, clock, policy, kind)
    return await alerts.ingest(session, clock, policy, integration, signals)


@dataclass(frozen=True)
class Pinged:
    next_due_at: datetime
    alert_at: datetime  # when an alert opens unless another ping comes
    outcomes: list[Outcome]


async def ping(session: AsyncSession, clock: Clock, policy: Policy, spec: HeartbeatSpec) -> Pinged:
    """Record a ping; resolve the heartbeat's alert if it was down."""
    now = clock.now()
    row = (await locked_rows(session, HeartbeatState, [spec.name], now))[spec.name]
    was_down = row.status == "down"
    row.status, row.last_ping_at, row.down_since = "up", now, None
    row.due_at = now + spec.interval
    row.pings += 1
    outcomes = await emit(
        session, clock, policy, KIND, [Signal("resolve", dedup_key(spec.name))] if was_down else []
    )
    return Pinged(row.due_at, row.due_at + spec.grace, outcomes)


def _missed(spec: HeartbeatSpec, row: HeartbeatState, now: datetime) -> Signal:
    assert row.last_ping_at is not None and row.due_at is not None
    labels = {"heartbeat": spec.name}
    if spec.component:
        labels["component"] = spec.component
    if spec.severity:
        labels["severity"] = spec.severity
    return Signal(
        "trigger",
        dedup_key(spec.name),
        summary=(
            f"No heartbeat from {spec.name} for {_whole(now - row.last_ping_at)} "
            f"(expected every {format_duration(spec.interval)})"
        ),
        labels=labels,
        annotations={"description": spec.description} if spec.description else {},
        details={
            "last_ping_at": row.last_ping_at.isoformat(),
            "due_at": row.due_at.isoformat(),
            "interval": format_duration(spec.interval),
            "grace": format_duration(spec.grace),
        },
        source=f"heartbeat/{spec.name}",
        starts_at=row.due_at,
    )


async def check(session: AsyncSession, clock: Clock, policy: Policy) -> list[Outcome]:
    """Raise an alert for each heartbeat overdue by more than its grace; forget ones left the policy."""
    now = clock.now()
    rows = await locked_rows(session, HeartbeatState, [s.name for s in policy.heartbeats], now)
    signals: list[Signal] = []
    for spec in policy.heartbeats:
        row = rows[spec.name]
        if row.status != "up" or row.last_ping_at is None:
            continue
        row.due_at = row.last_ping_at + spec.interval  # follows an interval changed in the policy
        if now >= row.due_at + spec.grace:
            row.status, row.down_since = "down", now
            signals.append(_missed(spec, row, now))
    gone = HeartbeatState.name.not_in([s.name for s in policy.heartbeats])
    for name in await session.scalars(
        select(HeartbeatState.name).where(gone, HeartbeatState.status == "down")
    ):
        signals.append(Signal("resolve", dedup_key(name)))  # nobody could ever ping it back up
    await session.execute(delete(HeartbeatState).where(gone))  # a no-op for a second worker, never an error
    return await emit(session, clock, policy, KIND, signals)


async def listing(session: AsyncSession, policy: Policy) -> list[tuple[HeartbeatSpec, HeartbeatState | None]]:
    """Every policy heartbeat with its state (None before the first check or ping)."""
    rows = {r.name: r for r in await session.scalars(select(HeartbeatState))}
    return [(spec, rows.get(spec.name)) for spec in policy.heartbeats]
