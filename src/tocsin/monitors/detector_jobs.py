"""Error-rate detectors (the only code that writes `error_rate_states`) and the detectors' loops.

A detector takes one sample per `interval`: a poll of the service's error summary, or the number of
Sentry events counted in the window just closed. Samples go through the pure SpikeDetector; a raise or
clear becomes a Signal applied in the same transaction as the detector's new state.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.alerts.signals import Outcome, Signal
from tocsin.core.clock import Clock
from tocsin.core.durations import format_duration
from tocsin.monitors import heartbeats
from tocsin.monitors.detector_models import ErrorRateState, locked_rows
from tocsin.monitors.spikes import Observation, SpikeDetector, SpikeSettings, SpikeState, describe
from tocsin.policy.detectors import ErrorRateSpec
from tocsin.policy.models import Policy
from tocsin.runtime import Runtime

log = logging.getLogger("tocsin.monitors")

KIND = "error-rate"
MAX_BODY = 1_000_000  # a monitoring summary is small; a bigger answer is a misconfigured url
MAX_WINDOWS = 100  # windows closed at once after a long stop; older ones are skipped, not replayed
CONCURRENT_POLLS = 20
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def dedup_key(name: str) -> str:
    return f"error-rate:{name}"


def detector(spec: ErrorRateSpec) -> SpikeDetector:
    return SpikeDetector(
        SpikeSettings(
            alpha=spec.alpha,
            min_count=spec.min_count,
            factor=spec.factor,
            floor=spec.floor,
            clear_factor=spec.effective_clear_factor,
            warmup=spec.warmup,
            raise_after=spec.raise_after,
            clear_after=spec.clear_after,
            relearn_after=spec.relearn_after,
        )
    )


def state_of(row: ErrorRateState) -> SpikeState:
    return SpikeState(row.baseline, row.samples, row.above, row.elevated, row.below, row.raised)


def _spike(spec: ErrorRateSpec, observation: Observation) -> Signal:
    labels = {"error_rate": spec.name}
    if spec.component:
        labels["component"] = spec.component
    if spec.severity:
        labels["severity"] = spec.severity
    summary = describe(spec.component or spec.name, observation, spec.unit, spec.floor)
    return Signal(
        "trigger",
        dedup_key(spec.name),
        summary=summary,
        labels=labels,
        details={
            "rate": observation.value,
            "baseline": observation.baseline,
            "factor": spec.factor,
            "unit": spec.unit,
            "source": spec.source,
            "interval": format_duration(spec.interval),
        },
        source=spec.url or f"sentry/{spec.sentry_project}",
    )


def observe(spec: ErrorRateSpec, row: ErrorRateState, value: float, at: datetime) -> Signal | None:
    """Feed one sample to the detector; the signal to send if the spike was raised or cleared."""
    observation = detector(spec).observe(state_of(row), value)
    state = observation.state
    row.baseline, row.samples, row.raised = state.baseline, state.samples, state.raised
    row.above, row.elevated, row.below = state.above, state.elevated, state.below
    row.last_value, row.last_sample_at, row.last_error = observation.value, at, ""
    if observation.change == "raise":
        row.raised_at = at
        return _spike(spec, observation)
    if observation.change == "clear":
        row.raised_at = None
        return Signal("resolve", dedup_key(spec.name))
    return None


def window_end(at: datetime, interval: timedelta) -> datetime:
    """The end of the counting window holding `at`; windows are aligned to the epoch."""
    size = interval.total_seconds()
    index = math.floor((at - _EPOCH).total_seconds() / size)
    return _EPOCH + timedelta(seconds=(index + 1) * size)


def _close_windows(spec: ErrorRateSpec, row: ErrorRateState, now: datetime) -> list[Signal]:
    """Turn every counting window that ended by `now` into a sample (events per minute)."""
    if row.next_sample_at is None:
        row.next_sample_at = window_end(now, spec.interval)
        return []
    signals: list[Signal] = []
    per_minute = 60.0 / spec.interval.total_seconds()
    closed = 0
    while row.next_sample_at <= now and closed < MAX_WINDOWS:
        signal = observe(spec, row, row.window_count * per_minute, row.next_sample_at)
        if signal is not None:
            signals.append(signal)
        row.window_count = 0
        row.next_sample_at += spec.interval
        closed += 1
    if row.next_sample_at <= now:
        row.next_sample_at = window_end(now, spec.interval)
    return signals


async def record_events(
    session: AsyncSession, clock: Clock, policy: Policy, counts: Mapping[str, int]
) -> list[Outcome]:
    """Count webhook events into each named detector's open window."""
    now = clock.now()
    specs = [s for s in policy.error_rates if s.source == "webhook" and counts.get(s.name)]
    rows = await locked_rows(session, ErrorRateState, [s.name for s in specs], now)
    signals: list[Signal] = []
    for spec in specs:
        row = rows[spec.name]
        signals += _close_windows(spec, row, now)
        row.window_count += counts[spec.name]
    return await heartbeats.emit(session, clock, policy, KIND, signals)


class PollError(Exception):
    """The service's error summary could not be read."""


def extract(document: Any, paths: tuple[str, ...]) -> float:
    """The number at the first of `paths` present in the JSON document."""
    for path in paths:
        current = document
        for part in path.split("."):
            if isinstance(current, dict) and part in current:
                current = current[part]
            elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
                current = current[int(part)]
            else:
                break
        else:
            if isinstance(current, bool) or not isinstance(current, int | float | str):
                raise PollError(f"{path} is not a number")
            try:
                value = float(current)
            except ValueError:
                raise PollError(f"{path} is not a number: {str(current)[:40]!r}") from None
            if not math.isfinite(value) or value < 0:
                raise PollError(f"{path} is not a non-negative number: {value}")
            return value
    raise PollError(f"the answer has no {' or '.join(paths)}")


async def fetch(client: httpx.AsyncClient, spec: ErrorRateSpec) -> float:
    """Poll the service's error summary; PollError says why it could not be read."""
    assert spec.url is not None
    headers = {"Accept": "application/json"}
    token = os.environ.get(spec.token_env) if spec.token_env else None
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        async with client.stream("GET", spec.url, headers=headers, timeout=spec.timeout.total_seconds()) as r:
            if r.status_code != 200:
                raise PollError(f"HTTP {r.status_code} from {spec.url}")
            body = b""
            async for chunk in r.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY:
                    raise PollError(f"the answer is over {MAX_BODY} bytes")
    except httpx.HTTPError as exc:
        raise PollError(f"{type(exc).__name__}: {exc}"[:300]) from None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise PollError("the answer is not JSON") from None
    return extract(document, spec.paths)


def _poll_sample(spec: ErrorRateSpec, row: ErrorRateState, value: float, now: datetime) -> Signal | None:
    if not spec.counter:
        return observe(spec, row, value, now)
    previous, since = row.counter_total, row.last_sample_at
    row.counter_total = value
    if previous is None or since is None or value < previous or now <= since:
        row.last_sample_at = now  # a first reading, or the service restarted: a new starting point
        return None
    return observe(spec, row, (value - previous) * 60.0 / (now - since).total_seconds(), now)


async def apply_polls(
    session: AsyncSession, clock: Clock, policy: Policy, results: Mapping[str, float | PollError]
) -> list[Signal]:
    """Feed poll results to their detectors and schedule each detector's next poll."""
    now = clock.now()
    specs = [s for s in policy.error_rates if s.name in results]
    rows = await locked_rows(session, ErrorRateState, [s.name for s in specs], now)
    signals: list[Signal] = []
    for spec in specs:
        row, result = rows[spec.name], results[spec.name]
        row.next_sample_at = now + spec.interval
        if isinstance(result, PollError):
            row.last_error = str(result)[:500]
            continue
        signal = _poll_sample(spec, row, result, now)
        if signal is not None:
            signals.append(signal)
    return signals


async def due_polls(session: AsyncSession, clock: Clock, policy: Policy) -> list[ErrorRateSpec]:
    now = clock.now()
    due = {s.name: s for s in policy.error_rates if s.source == "poll"}
    rows = await session.scalars(select(ErrorRateState).where(ErrorRateState.name.in_(list(due))))
    for row in rows:
        if row.next_sample_at is not None and row.next_sample_at > now:
            del due[row.name]
    return list(due.values())


async def settle(session: AsyncSession, clock: Clock, policy: Policy) -> list[Signal]:
    """Close ended webhook windows; forget detectors that left the policy, resolving their spikes."""
    now = clock.now()
    webhook = [s for s in policy.error_rates if s.source == "webhook"]
    rows = await locked_rows(session, ErrorRateState, [s.name for s in webhook], now)
    signals: list[Signal] = []
    for spec in webhook:
        signals += _close_windows(spec, rows[spec.name], now)
    gone = ErrorRateState.name.not_in([s.name for s in policy.error_rates])
    for name in await session.scalars(select(ErrorRateState.name).where(gone, ErrorRateState.raised)):
        signals.append(Signal("resolve", dedup_key(name)))
    await session.execute(delete(ErrorRateState).where(gone))
    return signals


async def listing(session: AsyncSession, policy: Policy) -> list[tuple[ErrorRateSpec, ErrorRateState | None]]:
    rows = {r.name: r for r in await session.scalars(select(ErrorRateState))}
    return [(spec, rows.get(spec.name)) for spec in policy.error_rates]


def publish(rt: Runtime, outcomes: list[Outcome]) -> None:
    incidents = {o.incident_id for o in outcomes if o.incident_id is not None}
    if incidents:
        rt.bus.publish("incidents", *(f"incident:{i}" for i in incidents))


async def check_heartbeats(rt: Runtime) -> int:
    """One pass of the heartbeat loop; returns the number of alerts opened or resolved."""
    async with rt.db.transaction() as session:
        outcomes = await heartbeats.check(session, rt.clock, rt.policy)
    publish(rt, outcomes)
    return len(outcomes)


async def check_error_rates(rt: Runtime) -> int:
    """One pass of the error-rate loop: poll what is due, close webhook windows, raise or clear spikes."""
    async with rt.db.session() as session:
        due = await due_polls(session, rt.clock, rt.policy)
    results: dict[str, float | PollError] = {}
    if due:
        limit = asyncio.Semaphore(CONCURRENT_POLLS)

        async def poll(client: httpx.AsyncClient, spec: ErrorRateSpec) -> None:
            async with limit:
                try:
                    results[spec.name] = await fetch(client, spec)
                except PollError as exc:
                    log.warning("error rate %s: %s", spec.name, exc)
                    results[spec.name] = exc

        async with httpx.AsyncClient(headers={"User-Agent": "tocsin"}, follow_redirects=True) as client:
            await asyncio.gather(*(poll(client, spec) for spec in due))
    async with rt.db.transaction() as session:
        signals = await settle(session, rt.clock, rt.policy)
        signals += await apply_polls(session, rt.clock, rt.policy, results)
        outcomes = await heartbeats.emit(session, rt.clock, rt.policy, KIND, signals)
    publish(rt, outcomes)
    return len(outcomes)


def register(rt: Runtime) -> None:
    rt.loops.add("heartbeats", 5.0, lambda: check_heartbeats(rt))
    rt.loops.add("error-rates", 5.0, lambda: check_error_rates(rt))
