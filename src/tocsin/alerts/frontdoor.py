"""The ingest front door: alert requests go straight to their handler, skipping the API's stack.

An alert storm is thousands of small POSTs a second; each layer of the JSON API's middleware and its
router (a hundred routes matched in turn) costs more than parsing the alert itself. The front door
matches the few ingest paths first and answers them directly, still counted in Tocsin's metrics.
"""

from __future__ import annotations

import logging
import time

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tocsin.health.metrics import Metrics

log = logging.getLogger("tocsin.alerts")
UNAVAILABLE = JSONResponse(
    {"error": {"code": "unavailable", "message": "the alert could not be stored; retry", "field": None}},
    status_code=503,
    headers={"Retry-After": "5"},
)


class FrontDoor:
    def __init__(self, app: ASGIApp, routes: list[Route], metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.exact = {r.path: r for r in routes if "{" not in r.path}
        self.patterned = [r for r in routes if "{" in r.path]

    def _route(self, scope: Scope) -> Route | None:
        route = self.exact.get(scope["path"])
        if route is not None:
            return route
        for candidate in self.patterned:
            match, child = candidate.matches(scope)
            if match is Match.FULL:
                scope.update(child)
                return candidate
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._route(scope) if scope["type"] == "http" else None
        if route is None or scope["method"] not in (route.methods or ()):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0  # no response started yet

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            response = await route.endpoint(Request(scope, receive))
            await response(scope, receive, sending)
        except Exception:
            # Nothing was committed (a 2xx is only sent after the commit): say so, and that a retry is welcome.
            log.exception("ingest request to %s failed", scope["path"])
            if not status:
                await UNAVAILABLE(scope, receive, sending)
        finally:
            self.metrics.observe(scope["method"], route.path, status, time.perf_counter() - started)
