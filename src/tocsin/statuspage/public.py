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


# Each exact URL of the public page: the render-cache entry that answers it, and whether the API's schema
# lists it (of a pair with and without a trailing slash, one is listed).
EXACT = {
    "/status": ("page", True),
    "/status/": ("page", False),
    "/status/history": ("history", False),
    "/status/history/": ("history", True),
    "/status/feed.atom": ("feed", True),
    "/status/status.css": ("css", False),
    **{f"/status/api/v2/{path}": (f"api:{path}", True) for path in API_PATHS},
}
_DOCS = {
    "page": "The status page.",
    "history": "Every public incident and maintenance, by month.",
    "feed": "Atom feed of public updates.",
    "css": "The status page's style sheet.",
}


def _cached(key: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        cache = cache_of(request)
        return cache.css if key == "css" else await cache.get(key)  # the style sheet needs no snapshot

    endpoint.__name__ = "statuspage_" + re.sub(r"[^a-z]+", "_", key.removesuffix(".json"))
    endpoint.__doc__ = _DOCS.get(key) or f"Statuspage public API v2: {key.removeprefix('api:')}"
    return endpoint


async def incident(request: Request) -> Response:
    """One public incident or maintenance with all its updates."""
    key = str(request.path_params["key"]).upper()
    if not KEY.fullmatch(key):
        key = "MISSING-0"
    return await cache_of(request).get(f"incident:{key}")


routes = [
    *(
        Route(path, _cached(key), methods=["GET"], include_in_schema=shown)
        for path, (key, shown) in EXACT.items()
    ),
    Route("/status/incidents/{key}", incident, methods=["GET"], include_in_schema=False),
    Route("/status/incidents/{key}/", incident, methods=["GET"]),
]
_INCIDENT_URL = re.compile(rb"/status/incidents/((?:INC|MNT)-[0-9]{1,9})(/?)", re.IGNORECASE)


def answers(cache: StatusCache, metrics: Metrics) -> Answers:
    """The ready answers of these routes for `tocsin serve`'s protocol (`tocsin.web.ready`), counted as requests."""
    exact = {path.encode(): (key, path) for path, (key, _) in EXACT.items()}

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
