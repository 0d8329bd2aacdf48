"""API shapes of Tocsin's own health and monitoring answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class DatabaseHealth(BaseModel):
    status: Literal["ok", "unreachable"]
    backend: str = Field(examples=["sqlite", "postgresql"])
    detail: str


class HealthOut(BaseModel):
    status: Literal["ok", "unhealthy"]
    version: str
    database: DatabaseHealth


class RecentErrorOut(BaseModel):
    at: str
    method: str
    route: str
    status: int


class MonitoringOut(BaseModel):
    type: Literal["health", "metrics", "errors"]
    summary: dict[str, Any] = Field(
        description="health: as /api/health; metrics: open incidents by severity and SLA breaches; "
        "errors: request and error counts"
    )
    recent: list[RecentErrorOut] | None = Field(
        default=None, description="errors only: the latest 5xx answers"
    )
