"""API shapes of health-check monitors, their results and aggregates."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class ResultOut(BaseModel):
    """One run of a check."""

    model_config = ConfigDict(from_attributes=True)

    at: datetime
    ok: bool
    status_code: int | None
    latency_ms: float | None
    error: str | None = Field(description="why the check could not complete (refused, timed out, ...)")
    failed: str | None = Field(description="the failed conditions, with the values observed")


class MonitorOut(BaseModel):
    """A monitor of the policy with its state, last result and uptime."""

    name: str
    component: str
    kind: str
    target: str = Field(description="the URL, or host:port")
    enabled: bool
    interval_seconds: float
    conditions: list[str]
    failure_threshold: int
    success_threshold: int
    status: str = Field(description="unknown (no result yet), up or down (after the thresholds)")
    since: datetime | None = Field(description="when the status last changed")
    consecutive_failures: int
    consecutive_successes: int
    alerted: bool = Field(description="an alert for this monitor is open")
    last_result: ResultOut | None
    uptime: dict[str, float | None] = Field(
        description="time-weighted share of observed time that was up, over 24h, 7d and 30d; null if none"
    )


class AggregateOut(BaseModel):
    """One hour or day of a monitor's checks."""

    model_config = ConfigDict(from_attributes=True)

    start: datetime
    checks: int
    ok_checks: int
    up_seconds: float
    observed_seconds: float
    uptime: float | None
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
