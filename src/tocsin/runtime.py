"""What a running Tocsin holds: built once by create_app and handed to routes and workers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.alerts.keys import KeyRing
from tocsin.alerts.pipeline import Ingestor
from tocsin.config import Settings
from tocsin.core.bus import Bus
from tocsin.core.clock import Clock
from tocsin.db.engine import Database
from tocsin.engine.loops import Loops
from tocsin.engine.worker import Handler
from tocsin.health.metrics import Metrics
from tocsin.policy.models import Policy

if TYPE_CHECKING:
    from tocsin.oncall.paging import Paging


@dataclass
class Runtime:
    settings: Settings
    db: Database
    clock: Clock
    policy: Policy
    bus: Bus = field(default_factory=Bus)
    metrics: Metrics = field(default_factory=Metrics)
    ingestor: Ingestor = field(init=False)
    keys: KeyRing = field(init=False)
    loops: Loops = field(default_factory=Loops)
    handlers: dict[str, Handler] = field(default_factory=dict)  # timer kind -> handler (domains' jobs.py)
    # Timer kinds that page people: fired in the transaction that makes them due, while the engine runs.
    urgent: set[str] = field(default_factory=set)
    paging: Paging | None = None  # built on first use (it reads the signing key from the database)
    # Database.before_commit hooks of the background work, installed only while it runs (see start).
    commit_hooks: dict[str, Callable[[AsyncSession], Awaitable[None]]] = field(default_factory=dict)
    closers: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)  # run by stop, by name

    def __post_init__(self) -> None:
        self.db.on_commit = self.bus.publish
        writers = 1 if self.db.is_sqlite else 2  # see Ingestor
        self.ingestor = Ingestor(self.db, self.clock, self.policy, self.bus, writers=writers)
        self.keys = KeyRing(self.db)

    def start(self) -> None:
        """Run the background loops in this process, and their work at commit (e.g. timers due at once)."""
        self.db.before_commit.update(self.commit_hooks)
        self.loops.start()

    async def stop(self) -> None:
        for name in self.commit_hooks:
            self.db.before_commit.pop(name, None)
        await self.loops.stop()
        for close in self.closers.values():
            await close()


def runtime(request: Request) -> Runtime:
    """FastAPI dependency: the app's Runtime."""
    rt: Runtime = request.app.state.runtime
    return rt
