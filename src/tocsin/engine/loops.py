"""Periodic background work (alert expiry, monitors, heartbeat checks) run inside `tocsin serve`.

Each loop's `tick` is an ordinary coroutine that takes the time from the runtime's clock, so tests call
it directly after moving a fake clock; only this runner sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger("tocsin.engine")


@dataclass
class Loop:
    name: str
    every: float  # seconds between the end of one tick and the start of the next
    tick: Callable[[], Awaitable[object]]
    wait: Callable[[], Awaitable[object]] | None = None  # instead of sleeping `every` (e.g. a wake-up)
    failures: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
                self.failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                # A failing loop backs off but never stops: the next tick may find the database back.
                self.failures += 1
                log.exception("background loop %s failed (%d in a row)", self.name, self.failures)
            if self.failures == 0 and self.wait is not None:
                await self.wait()
            else:
                await asyncio.sleep(self.every * min(2 ** min(self.failures, 5), 30))


class Loops:
    """The set of background loops of one process."""

    def __init__(self) -> None:
        self.loops: list[Loop] = []

    def add(
        self,
        name: str,
        every: float,
        tick: Callable[[], Awaitable[object]],
        wait: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """Register a loop; a second registration of the same name replaces the first."""
        self.loops = [loop for loop in self.loops if loop.name != name]
        self.loops.append(Loop(name, every, tick, wait))

    def start(self) -> None:
        for loop in self.loops:
            if loop.task is None or loop.task.done():
                loop.task = asyncio.create_task(loop.run(), name=f"tocsin-{loop.name}")

    async def stop(self) -> None:
        for loop in self.loops:
            if loop.task is not None:
                loop.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop.task
                loop.task = None
