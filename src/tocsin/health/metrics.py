"""Tocsin's own request metrics: Prometheus series plus the counts /api/monitoring summarises."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass
class RecentError:
    at: datetime
    method: str
    route: str
    status: int


@dataclass
class Metrics:
    """One registry per app (no process-wide globals), so tests and apps never share series."""

    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))
    started_at: float = field(default_factory=time.time)
    requests: int = 0
    client_errors: int = 0
    server_errors: int = 0
    recent_errors: deque[RecentError] = field(default_factory=lambda: deque(maxlen=50))

    def __post_init__(self) -> None:
        self.http_requests = Counter(
            "tocsin_http_requests",
            "HTTP requests served",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "tocsin_http_request_duration_seconds", "HTTP request latency", ["route"], registry=self.registry
        )
        self.open_incidents = Gauge(
            "tocsin_open_incidents", "Open incidents by severity", ["severity"], registry=self.registry
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.sla_breaches = Gauge(
            "tocsin_sla_breaches", "Open incidents past a deadline, by kind", ["kind"], registry=self.registry
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests += 1
        if status >= 500:
            self.server_errors += 1
        elif status >= 400:
            self.client_errors += 1
        if status >= 500:
            self.recent_errors.append(RecentError(datetime.now(UTC), method, route, status))
        children = self._children.get((method, route, status))
        if children is None:  # a labelled child is found once per (method, route, status), not per request
            children = (
                self.http_requests.labels(method, route, str(status)),
                self.http_seconds.labels(route),
            )
            self._children[(method, route, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "client_errors": self.client_errors,
            "server_errors": self.server_errors,
            "error_rate": round(self.server_errors / self.requests, 6) if self.requests else 0.0,
            "uptime_seconds": round(time.time() - self.started_at, 3),
        }


class MetricsMiddleware:
    """Pure ASGI middleware: counts every HTTP request by route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - started)
