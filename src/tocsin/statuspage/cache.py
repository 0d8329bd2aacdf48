"""The render cache: the public page served from memory, re-rendered only when the page changes.

Every process keeps the last Snapshot and the responses rendered from it. At most once a second a
request starts a background read of the page version (one row); only when it moved (or a minute passed,
for the day's uptime bars and maintenance clocks) is the Snapshot re-read. Once the page is rendered no
request waits on the database: each gets the current render while the check runs. Only the first render,
and the first request after this process changed the page (`invalidate`), wait for the read. If the
database is away, the last render keeps being served.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from starlette.responses import Response

from tocsin.core.clock import Clock
from tocsin.db.engine import Database
from tocsin.policy.models import Policy
from tocsin.statuspage import service, snapshot
from tocsin.statuspage.render import Renderer, stylesheet
from tocsin.statuspage.snapshot import Snapshot
from tocsin.web.ready import Ready

log = logging.getLogger("tocsin.statuspage")

POLL_SECONDS = 1.0
MAX_AGE_SECONDS = 60.0
HTML = "text/html; charset=utf-8"
JSON = "application/json"
ATOM = "application/atom+xml; charset=utf-8"
CSS = "text/css; charset=utf-8"
PUBLIC_HEADERS = {
    "Cache-Control": "public, max-age=5",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
JSON_HEADERS = {
    "Cache-Control": "public, max-age=5",
    "Access-Control-Allow-Origin": "*",  # widgets read the JSON from other sites, as with Statuspage
    "X-Content-Type-Options": "nosniff",
}


def _response(body: bytes, media_type: str, status_code: int = 200) -> Response:
    headers = JSON_HEADERS if media_type == JSON else PUBLIC_HEADERS
    return Response(body, status_code=status_code, media_type=media_type, headers=headers)


UNAVAILABLE = Response(
    b"The status page is starting or its database is unreachable; try again shortly.\n",
    status_code=503,
    media_type="text/plain; charset=utf-8",
    headers={"Retry-After": "5"},
)


class StatusCache:
    """Responses for the public paths, keyed by path, valid for one page version."""

    def __init__(
        self, db: Database, clock: Clock, policy: Policy, renderer: Renderer, url: Callable[[], str]
    ) -> None:
        self.db, self.clock, self.policy, self.renderer = db, clock, policy, renderer
        self.url = url  # the public base URL of the page, for JSON links and the feed
        self.snap: Snapshot | None = None
        self.version = -1
        self.responses: dict[str, Response] = {}
        self.wire: dict[str, Ready] = {}  # the same responses, encoded for the protocol's ready answers
        self._checked = 0.0
        self._loaded = 0.0
        self._lock = asyncio.Lock()
        self._polling: asyncio.Task[None] | None = None
        self._reading: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # every read still running, for `close`
        self.css = _response(stylesheet(), CSS)

    def invalidate(self) -> None:
        """This process changed the page: the next request re-reads it."""
        self._checked = 0.0
        self.version = -1
        self._reading = None  # a read already under way may have missed the change

    def _fresh(self) -> Snapshot | None:
        """The Snapshot if it can be served without waiting (starting the once-a-second check when due)."""
        if self.snap is None or self.version < 0:
            return None
        now = time.monotonic()
        if now - self._checked >= POLL_SECONDS and (self._polling is None or self._polling.done()):
            self._checked = now  # one check a second, however many requests arrive meanwhile
            self._polling = self._start(now, "tocsin-status-poll")
        return self.snap

    async def current(self) -> Snapshot | None:
        """The latest Snapshot; the previous one while a background check runs or when it fails."""
        snap = self._fresh()
        if snap is not None:
            return snap
        # The first render, or this process changed the page: every request now waits on one shared
        # read, and all wake together when it ends (not one by one, as they would queued on a lock).
        if self._reading is None or self._reading.done():
            now = time.monotonic()
            self._reading = self._start(now, "tocsin-status-read")
        await asyncio.shield(self._reading)
        return self.snap

    def _start(self, now: float, name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(self._refresh_locked(now), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Cancel every read still running, including one `invalidate` let go of: a read left to die
        with its event loop would leave its connection idle in a transaction on the server."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _refresh_locked(self, now: float) -> None:
        async with self._lock:
            await self._refresh_logged(now)

    async def _refresh_logged(self, now: float) -> None:
        try:
            await self._refresh(now)
        except Exception:
            log.exception("cannot refresh the status page; serving the last render")
            self._checked = now

    async def _refresh(self, now: float) -> None:
        async with self.db.session() as session:
            version = await service.version(session)
            if version == self.version and now - self._loaded < MAX_AGE_SECONDS and self.snap is not None:
                self._checked = now
                return
            snap = await snapshot.load(session, self.policy, self.clock.now(), version)
        self.snap, self.version, self.responses, self.wire = snap, version, {}, {}
        self._checked = self._loaded = now

    async def get(self, key: str) -> Response:
        """The response for one public resource: `page`, `history`, `feed`, `incident:INC-1`, `api:<path>`."""
        snap = await self.current()
        if snap is None:
            return UNAVAILABLE
        return self._answer(snap, key)

    def ready(self, key: str) -> Ready | None:
        """The response for `key` as bytes on the wire, if it can be given without waiting; else None."""
        snap = self._fresh()
        if snap is None:
            return None
        found = self.wire.get(key)
        if found is None:
            found = Ready.of(self._answer(snap, key))
            if found.status == 200:
                self.wire[key] = found
        return found

    def _answer(self, snap: Snapshot, key: str) -> Response:
        if key == "css":
            return self.css
        found = self.responses.get(key)
        if found is None:
            found = self._render(snap, key)
            if found.status_code == 200:  # misses are not kept: their keys come from visitors
                self.responses[key] = found
        return found

    def _render(self, snap: Snapshot, key: str) -> Response:
        url = self.url()
        if key == "page":
            return _response(self.renderer.page(snap).encode(), HTML)
        if key == "history":
            return _response(self.renderer.history(snap).encode(), HTML)
        if key == "feed":
            return _response(self.renderer.feed(snap, url).encode(), ATOM)
        if key.startswith("incident:"):
            text = self.renderer.incident(snap, key.removeprefix("incident:"))
            if text is None:
                text = self.renderer.message(
                    snap, "No such incident", "There is no public incident with that id."
                )
                return _response(text.encode(), HTML, 404)
            return _response(text.encode(), HTML)
        if key.startswith("api:"):
            documents = self.renderer.documents(snap, url)
            for path, body in documents.items():
                self.responses[f"api:{path}"] = _response(body, JSON)
            found = self.responses.get(key)
            if found is not None:
                return found
        return _response(b'{"error": "not found"}', JSON, 404)
