"""The static export: the whole public page as files any web server or CDN can serve.

    DIR/index.html                       the status page
    DIR/history/index.html               incident history by month
    DIR/incidents/INC-42/index.html      one page per public incident and maintenance
    DIR/feed.atom, DIR/status.css
    DIR/api/v2/summary.json ...          the Statuspage-compatible JSON

Files are written beside their final name and renamed into place, so a web server never serves half a
file. `watch` rewrites the export whenever the page version moves (and every minute, for the bars).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tocsin.core.clock import Clock
from tocsin.db.engine import Database
from tocsin.policy.models import Policy
from tocsin.statuspage import service, snapshot
from tocsin.statuspage.render import Places, Renderer, stylesheet

log = logging.getLogger("tocsin.statuspage")
REFRESH_SECONDS = 60.0


@dataclass(frozen=True)
class Target:
    """Where and how to export: the directory, the path it is served under, the live Tocsin if any."""

    directory: Path
    base: str = ""  # the URL path the directory is served at, e.g. "" (site root) or "/status"
    live_url: str | None = None  # Tocsin's public URL: subscribe and report-a-problem point there
    public_url: str | None = None  # the export's own public URL, for the JSON and feed links


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_bytes() == data:
        return
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def files(snap: snapshot.Snapshot, policy: Policy, target: Target) -> dict[str, bytes]:
    """Every exported file by its path relative to the directory."""
    live = target.live_url.rstrip("/") if target.live_url else None
    places = Places(
        base=target.base.rstrip("/"),
        subscribe=f"{live}/status/subscribe" if live else None,
        report=f"{live}/report" if live else None,
    )
    renderer = Renderer(policy.timezone, places)
    url = (target.public_url or places.base or "").rstrip("/")
    out = {
        "index.html": renderer.page(snap).encode(),
        "history/index.html": renderer.history(snap).encode(),
        "feed.atom": renderer.feed(snap, url).encode(),
        "status.css": stylesheet(),
    }
    for item in [*snap.incidents, *snap.maintenances]:
        page = renderer.incident(snap, item.key)
        if page is not None:
            out[f"incidents/{item.key}/index.html"] = page.encode()
    for path, body in renderer.documents(snap, url).items():
        out[f"api/v2/{path}"] = body
    return out


async def export(db: Database, clock: Clock, policy: Policy, target: Target) -> tuple[int, list[str]]:
    """Write the export once; (the page version written, the files' relative paths)."""
    async with db.session() as session:
        version = await service.version(session)
        snap = await snapshot.load(session, policy, clock.now(), version)
    written = files(snap, policy, target)
    for relative, data in written.items():
        _write(target.directory / relative, data)
    return version, sorted(written)


class Watcher:
    """Re-exports when the page version moved since its last export (or a minute passed)."""

    def __init__(self, db: Database, clock: Clock, policy: Policy, target: Target) -> None:
        self.db, self.clock, self.policy, self.target = db, clock, policy, target
        self.version = -1
        self._at = 0.0

    async def step(self) -> list[str] | None:
        """Export if due; the files written, or None when nothing changed."""
        async with self.db.session() as session:
            version = await service.version(session)
        if version == self.version and time.monotonic() - self._at < REFRESH_SECONDS:
            return None
        self.version, paths = await export(self.db, self.clock, self.policy, self.target)
        self._at = time.monotonic()
        return paths


async def watch(
    watcher: Watcher,
    *,
    every: float = 1.0,
    done: Callable[[int, list[str]], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Re-export after every change, polling the page version every `every` seconds, until `stop`."""
    while stop is None or not stop.is_set():
        try:
            paths = await watcher.step()
            if paths is not None and done is not None:
                done(watcher.version, paths)
        except Exception:
            log.exception("status page export to %s failed; retrying", watcher.target.directory)
        await asyncio.sleep(every)
