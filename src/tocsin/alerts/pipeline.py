"""Group commit: concurrent ingest requests share one transaction, and each answers only after it commits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from tocsin.alerts import fastlane, service
from tocsin.alerts.integrations import IntegrationInfo
from tocsin.alerts.signals import Outcome, Signal
from tocsin.core.bus import Bus
from tocsin.core.clock import Clock
from tocsin.db.engine import Database
from tocsin.policy.models import Policy

log = logging.getLogger("tocsin.alerts")


@dataclass
class _Job:
    integration: IntegrationInfo
    signals: list[Signal]
    done: asyncio.Future[list[Outcome]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Ingestor:
    """Writer tasks drain the queue: every job waiting when a writer's commit starts rides in that commit.

    `writers` commits may be in flight at once. SQLite writes one transaction at a time (and Tocsin runs
    its storm-lane commits on the event loop's thread): one writer. PostgreSQL: two, so that one batch's
    Python (its rows built, encoded, answered) overlaps the other's round trips; measured 1.4x the
    alerts a second at 100 per request, 1.2x at one, and no more with three. Jobs in flight at once are
    applied in no particular order; a job submitted after another's commit is applied after it.
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        policy: Policy,
        bus: Bus,
        max_signals: int = 20_000,
        writers: int = 1,
    ) -> None:
        self.db, self.clock, self.policy, self.bus = db, clock, policy, bus
        self.max_signals, self.writers = max_signals, writers
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def submit(self, integration: IntegrationInfo, signals: list[Signal]) -> list[Outcome]:
        """Durably apply the signals; returns once they are committed (raises if they could not be)."""
        if len(self._tasks) < self.writers or any(task.done() for task in self._tasks):
            self._tasks = [task for task in self._tasks if not task.done()]
            self._tasks += [
                asyncio.create_task(self._run(), name="tocsin-ingest-writer")
                for _ in range(self.writers - len(self._tasks))
            ]
        job = _Job(integration, signals)
        await self._queue.put(job)
        return await job.done

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            await self._gather()
            size = len(batch[0].signals)
            while size < self.max_signals and not self._queue.empty():
                job = self._queue.get_nowait()
                batch.append(job)
                size += len(job.signals)
            try:
                await self._commit(batch)
            except Exception:
                # One bad job must not fail its neighbours: retry each alone, failing only itself.
                for job in batch:
                    if job.done.done():
                        continue
                    try:
                        await self._commit([job])
                    except Exception as exc:
                        log.exception(
                            "ingest of %d signals from %s failed", len(job.signals), job.integration.name
                        )
                        if not job.done.done():
                            job.done.set_exception(exc)

    async def _gather(self) -> None:
        """Before a commit starts, turns of the event loop while they bring more jobs (at most three):
        requests already read ride in this commit instead of waiting for the next. One alert a request
        from 32 clients, SQLite: 1.25x the requests a second, commits that carry more of them."""
        for _ in range(3):
            waiting = self._queue.qsize()
            await asyncio.sleep(0)
            if self._queue.qsize() == waiting:
                return

    async def _commit(self, batch: list[_Job]) -> None:
        # Jobs of one integration are applied as one ingest call: one lookup of open alerts for all of them.
        by_integration: dict[int, list[_Job]] = {}
        for job in batch:
            by_integration.setdefault(job.integration.id, []).append(job)
        groups = list(by_integration.values())
        batches = [(jobs[0].integration, [s for job in jobs for s in job.signals]) for jobs in groups]
        done = await fastlane.apply(self.db, self.clock, self.policy, batches, service.new_alert)
        if done is None:  # the batch needs incident logic: the full path, in one transaction
            done = []
            async with self.db.transaction() as session:
                for integration, signals in batches:
                    done.append(await service.ingest(session, self.clock, self.policy, integration, signals))
        results: dict[int, list[Outcome]] = {}
        for jobs, outcomes in zip(groups, done, strict=True):
            start = 0
            for job in jobs:
                results[id(job)] = outcomes[start : start + len(job.signals)]
                start += len(job.signals)
        for job in batch:
            if not job.done.done():
                job.done.set_result(results[id(job)])
        incidents = {o.incident_id for r in results.values() for o in r if o.incident_id is not None}
        if incidents:
            self.bus.publish("incidents", *(f"incident:{i}" for i in incidents))
