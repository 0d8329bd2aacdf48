"""What a running Tocsin holds: built once by create_app and handed to routes and workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request

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
    paging: Paging | None = None  # built on first use (it reads the signing key from the database)

    def __post_init__(self) -> None:
        self.db.on_commit = self.bus.publish
        self.ingestor = Ingestor(self.db, self.clock, self.policy, self.bus)
        self.keys = KeyRing(self.db)


def runtime(request: Request) -> Runtime:
    """FastAPI dependency: the app's Runtime."""
    rt: Runtime = request.app.state.runtime
    return rt
