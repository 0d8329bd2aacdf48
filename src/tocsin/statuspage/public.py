"""The public page's read routes, answered from the render cache by the front door (no API stack).

/status, /status/history/, /status/incidents/{id}/, /status/feed.atom, /status/status.css and the
Statuspage-compatible JSON under /status/api/v2/. None needs a login, none touches the database per
request.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tocsin.health.metrics import Metrics
from tocsin.statuspage.cache import StatusCache
from tocsin.web.ready import Answers, Ready

KEY = re.compile(r"(INC|MNT)-[0-9]{1,9}")
API_PATHS = (
    "summary.json",
    "status.json",
    "components.json",
    "incidents.json",
    "incidents/unresolved.json",
    "scheduled-maintenances.json",
    "scheduled-maintenances/upcoming.json",
    "scheduled-maintenances/active.json",
)


def cache_of(request: Request) -> StatusCache:
    found: StatusCache = request.app.state.status_cache
    return found


async def page(request: Request) -> Response:
    """The status page."""
    return await cache_of(request).get("page")


async def history(request: Request) -> Response:
    """Every public incident and maintenance, by month."""
    return await cache_of(request).get("history")


async def incident(request: Request) -> Response:
    """One public incident or maintenance with all its updates."""
    key = str(request.path_params["key"]).upper()
    if not KEY.fullmatch(key):
        key = "MISSING-0"
    return await cache_of(request).get(f"incident:{key}")


async def feed(request: Request) -> Response:
    """Atom feed of public updates."""
    return await cache_of(request).get("feed")


async def css(request: Request) -> Response:
    return cache_of(request).css


def _document(path: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await cache_of(request).get(f"api:{path}")

    endpoint.__name__ = "statuspage_" + re.sub(r"[^a-z]+", "_", path.removesuffix(".json"))
    endpoint.__doc__ = f"Statuspage public API v2: {path}"
    return endpoint


routes = [
    Route("/status", page, methods=["GET"]),
    Route("/status/", page, methods=["GET"], include_in_schema=False),
    Route("/status/history", history, methods=["GET"], include_in_schema=False),
    Route("/status/history/", history, methods=["GET"]),
    Route("/status/incidents/{key}", incident, methods=["GET"], include_in_schema=False),
    Route("/status/incidents/{key}/", incident, methods=["GET"]),
    Route("/status/feed.atom", feed, methods=["GET"]),
    Route("/status/status.css", css, methods=["GET"], include_in_schema=False),
    *(Route(f"/status/api/v2/{path}", _document(path), methods=["GET"]) for path in API_PATHS),
]


_READY_PATHS = {
    "/status": "page",
    "/status/": "page",
    "/status/history": "history",
    "/status/history/": "history",
    "/status/feed.atom": "feed",
    "/status/status.css": "css",
    **{f"/status/api/v2/{path}": f"api:{path}" for path in API_PATHS},
}
_INCIDENT_URL = re.compile(rb"/status/incidents/((?:INC|MNT)-[0-9]{1,9})(/?)", re.IGNORECASE)


def answers(cache: StatusCache, metrics: Metrics) -> Answers:
    """The ready answers of these routes for `tocsin serve`'s protocol (`tocsin.web.ready`), counted as requests."""
    exact = {path.encode(): (key, path) for path, key in _READY_PATHS.items()}

    def ready(method: bytes, url: bytes) -> Ready | None:
        found = exact.get(url)
        if found is not None:
            key, route = found
        else:
            match = _INCIDENT_URL.fullmatch(url)
            if match is None:
                return None
            key = f"incident:{match.group(1).decode().upper()}"
            route = "/status/incidents/{key}" + match.group(2).decode()
        answer = cache.ready(key)
        if answer is not None:
            metrics.observe(method.decode(), route, answer.status, 0.0)
        return answer

    return ready
