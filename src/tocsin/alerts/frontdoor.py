"""The front door: alert ingest and the public status page go straight to their handler, skipping the API's stack.

An alert storm is thousands of small POSTs a second, and a status page during an outage thousands of
GETs; each layer of the JSON API's middleware and its router (a hundred routes matched in turn) costs
more than the work itself. The app (`tocsin.app.App`) asks the front door first, before any middleware
of its own or FastAPI's; the front door matches the few fast paths and answers them directly, still
counted in Tocsin's metrics. (The ingest routes are direct routes, `tocsin.web.direct`, mounted here too.)
"""

from __future__ import annotations

import logging
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Message, Receive, Scope, Send

from tocsin.health.metrics import Metrics
from tocsin.web import direct

log = logging.getLogger("tocsin.alerts")
UNAVAILABLE = Response(direct.UNAVAILABLE.body, 503, headers=dict(direct.UNAVAILABLE.headers))


class FrontDoor:
    def __init__(self, routes: list[Route], metrics: Metrics) -> None:
        self.metrics = metrics
        self.exact = {r.path: r for r in routes if "{" not in r.path}
        self.patterned = [r for r in routes if "{" in r.path]

    def route(self, scope: Scope) -> Route | None:
        """The fast route for this HTTP request (path parameters put in the scope), or None."""
        route = self.exact.get(scope["path"])
        if route is None:
            for candidate in self.patterned:
                match, child = candidate.matches(scope)
                if match is Match.FULL:
                    scope.update(child)
                    route = candidate
                    break
        if route is None or scope["method"] not in (route.methods or ()):
            return None
        return route

    async def serve(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
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
            # The request did not complete (an ingest 2xx is only sent after its commit): a retry is welcome.
            log.exception("request to %s failed", scope["path"])
            if not status:
                await UNAVAILABLE(scope, receive, sending)
        finally:
            self.metrics.observe(scope["method"], route.path, status, time.perf_counter() - started)
