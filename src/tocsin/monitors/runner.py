"""Runs every monitor on its interval: staggered, concurrent within a bound, on time; streaks become alerts.

Each monitor has a fixed slot in its interval (from a hash of its name), so 1,000 monitors at 30 s spread
evenly over the 30 s instead of all firing at once, and a restarted or failed-over runner keeps the same
slots. Results are written in batches; the alert for a monitor is opened after `failure_threshold`
failures in a row and resolved after `success_threshold` successes, through the alerts pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import heapq
import logging
import os
import secrets
import socket
import zlib
from collections import deque
from datetime import UTC, datetime, timedelta

from tocsin.alerts.integrations import IntegrationInfo, builtin
from tocsin.alerts.signals import Signal
from tocsin.monitors import service
from tocsin.monitors.checks import Checker, CheckResult
from tocsin.monitors.conditions import Condition
from tocsin.monitors.service import Observation, Standing
from tocsin.policy.monitors import MonitorSpec
from tocsin.runtime import Runtime

log = logging.getLogger("tocsin.monitors")

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
ROLLUP_BATCH = 50  # monitors aggregated per transaction
MAX_PENDING = 100_000  # results kept for a retry while the database is away; older ones are dropped


class MonitorRunner:
    """The monitors of one policy, run by whichever process holds the runner lease."""

    def __init__(
        self,
        rt: Runtime,
        *,
        concurrency: int = 256,
        lease_ttl: timedelta = timedelta(seconds=30),
        holder: str | None = None,
    ) -> None:
        self.rt = rt
        self.specs = {m.name: m for m in rt.policy.monitors if m.enabled}
        self.conditions: dict[str, list[Condition]] = {n: s.checked_conditions for n, s in self.specs.items()}
        self.checker = Checker(max_connections=concurrency)  # a run never waits for a pooled connection
        self.concurrency = concurrency
        self.lease_ttl = lease_ttl
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lags: deque[float] = deque(maxlen=100_000)  # seconds each run started after its slot
        self.skipped = 0  # slots passed over because the previous run of that monitor was still going
        self._semaphore: asyncio.Semaphore | None = None
        self._renew_at: datetime | None = None
        self._lease_until: datetime | None = None
        self._renewing: asyncio.Task[bool] | None = None
        self._schedule: list[tuple[datetime, str]] = []
        self._standings: dict[str, Standing] | None = None
        self._last: dict[str, Observation] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._pending: list[Observation] = []
        self._flush_lock = asyncio.Lock()
        self._integration: IntegrationInfo | None = None

    # ------------------------------------------------------------------------------------ schedule

    def slot(self, spec: MonitorSpec, after: datetime, *, strictly: bool = False) -> datetime:
        """The monitor's first slot at (or strictly after) `after`."""
        interval = spec.interval // _US
        offset = zlib.crc32(spec.name.encode()) % interval
        elapsed = (after - _EPOCH) // _US - offset
        count = -(-elapsed // interval)  # ceiling division
        due = _EPOCH + (offset + count * interval) * _US
        return due + spec.interval if strictly and due <= after else due

    async def _lead(self, now: datetime) -> bool:
        """Whether this runner holds the lease; renews it in the background well before it runs out."""
        if self._lease_until is not None and now < self._lease_until:
            # Renewing waits for the database (on SQLite, behind any writer): never in the way of a tick.
            if self._renew_at is not None and now >= self._renew_at and not self._renewal_running():
                self._renewing = asyncio.create_task(self._take_lease(now), name="tocsin-monitor-lease")
                self._renewing.add_done_callback(_log_failure)
            return True
        return await self._take_lease(now)

    def _renewal_running(self) -> bool:
        return self._renewing is not None and not self._renewing.done()

    async def _take_lease(self, now: datetime) -> bool:
        """Take or renew the lease; on taking it, resume every monitor's standing and plan the slots."""
        async with self.rt.db.transaction() as session:
            leading = await service.take_lease(session, self.holder, now, self.lease_ttl)
            resumed = await service.standings(session) if leading and self._standings is None else None
        if not leading:
            if self._standings is not None:
                log.warning("monitor runner lease lost to another process; monitors stop here")
            self._forget()
            return False
        if resumed is not None:
            self._standings = resumed
            self._schedule = [(self.slot(spec, now), name) for name, spec in self.specs.items()]
            heapq.heapify(self._schedule)
        self._lease_until, self._renew_at = now + self.lease_ttl, now + self.lease_ttl / 3
        return True

    def _forget(self) -> None:
        self._standings, self._schedule, self._renew_at, self._lease_until = None, [], None, None

    async def tick(self, wait: bool = False) -> int:
        """Start every monitor whose slot has come; with wait, also wait for them and write the results."""
        now = self.rt.clock.now()
        started = 0
        if await self._lead(now):
            while self._schedule and self._schedule[0][0] <= now:
                due, name = heapq.heappop(self._schedule)
                spec = self.specs[name]
                following = due + spec.interval
                # A runner that fell behind skips the missed slots rather than running a burst.
                heapq.heappush(
                    self._schedule,
                    (following if following > now else self.slot(spec, now, strictly=True), name),
                )
                if name in self._running:
                    self.skipped += 1
                    continue
                task = asyncio.create_task(self._run(spec, due), name=f"tocsin-monitor-{name}")
                self._running[name] = task
                task.add_done_callback(functools.partial(self._done, name))
                started += 1
        if wait:
            await self.drain()
        return started

    def _done(self, name: str, task: asyncio.Task[None]) -> None:
        if self._running.get(name) is task:
            del self._running[name]
        if not task.cancelled() and task.exception() is not None:
            log.error("monitor %s run failed", name, exc_info=task.exception())

    def next_due(self) -> datetime | None:
        return self._schedule[0][0] if self._schedule else None

    # ------------------------------------------------------------------------------------ one run

    async def _run(self, spec: MonitorSpec, due: datetime) -> None:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.concurrency)
        async with self._semaphore:
            started = self.rt.clock.now()
            self.lags.append(max((started - due).total_seconds(), 0.0))
            result = await self.checker.check(spec, started)
        self._judge(spec, result)

    def _judge(self, spec: MonitorSpec, result: CheckResult) -> None:
        evaluations = [condition.evaluate(result) for condition in self.conditions[spec.name]]
        ok = all(e.ok for e in evaluations) and (result.error is None or not result.connected)
        failed = "; ".join(e.explanation for e in evaluations if not e.ok) or None
        if self._standings is None:
            return  # the lease was lost while this ran: the new holder runs it
        standing = self._standings.setdefault(spec.name, Standing())
        standing.observe(ok, result.at, spec.failure_threshold, spec.success_threshold)
        observation = Observation(
            monitor=spec.name,
            at=result.at,
            ok=ok,
            status_code=result.status,
            latency_ms=None if result.latency_ms is None else round(result.latency_ms, 3),
            error=result.error,
            failed=failed[:4000] if failed else None,
            standing=dataclasses.replace(standing),
        )
        self._last[spec.name] = observation
        self._pending.append(observation)

    # -------------------------------------------------------------------------------- writing out

    async def drain(self) -> None:
        """Wait for the runs in flight, then write their results and any alert changes."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)
        await self.flush()

    async def flush(self) -> None:
        """Write the finished results in one transaction, then open or resolve alerts that changed."""
        async with self._flush_lock:
            batch, self._pending = self._pending, []
            if batch:
                try:
                    async with self.rt.db.transaction() as session:
                        await service.record(session, batch)
                except Exception:
                    self._pending = (batch + self._pending)[-MAX_PENDING:]
                    raise
            await self._signal_changes()

    async def _signal_changes(self) -> None:
        # What the alerts domain was told (`alerted`) catches up with what the monitors say; a failed
        # submit is retried on the next flush, and a repeated trigger or resolve is harmless.
        if self._standings is None:
            return
        changes = {
            name: standing.status == "down"
            for name, standing in self._standings.items()
            if name in self.specs and (standing.status == "down") != standing.alerted
        }
        if not changes:
            return
        await self._submit([self._signal(name, down) for name, down in changes.items()])
        for name, down in changes.items():
            self._standings[name].alerted = down
        async with self.rt.db.transaction() as session:
            await service.set_alerted(session, changes)

    async def _submit(self, signals: list[Signal]) -> None:
        if self._integration is None:
            async with self.rt.db.transaction() as session:
                self._integration = await builtin(session, self.rt.clock, self.rt.policy, "monitor")
        await self.rt.ingestor.submit(self._integration, signals)

    def _signal(self, name: str, down: bool) -> Signal:
        key = f"monitor:{name}"
        spec = self.specs[name]
        if not down:
            return Signal(
                action="resolve", dedup_key=key, summary=f"Monitor {name} is up again", source=spec.target
            )
        last = self._last.get(name)
        standing = self._standings[name] if self._standings else Standing()
        reason = (last.error or last.failed or "failed") if last else "failed"
        labels = {"monitor": name, "component": spec.component}
        if spec.severity:
            labels["severity"] = spec.severity
        count = standing.consecutive_failures
        return Signal(
            action="trigger",
            dedup_key=key,
            summary=f"Monitor {name} is down ({count} failed check{'' if count == 1 else 's'}): {reason}"[
                :1024
            ],
            labels=labels,
            source=spec.target,
            starts_at=standing.failing_since,
            details={
                "monitor": name,
                "kind": spec.kind,
                "target": spec.target,
                "conditions": [str(c) for c in self.conditions[name]],
                "failed": last.failed if last else None,
                "error": last.error if last else None,
                "status_code": last.status_code if last else None,
                "consecutive_failures": count,
            },
        )

    # ------------------------------------------------------------------------- background running

    async def rollup(self) -> int:
        """Aggregate closed hours and days, prune old results, resolve alerts of monitors gone from the policy."""
        now = self.rt.clock.now()
        if not await self._lead(now):
            return 0
        intervals = {m.name: m.interval for m in self.rt.policy.monitors}
        async with self.rt.db.session() as session:
            names = await service.recorded_monitors(session)
        written = 0
        # Small transactions: on SQLite a rollup of 1,000 monitors must not hold the writer for seconds.
        for i in range(0, len(names), ROLLUP_BATCH):
            async with self.rt.db.transaction() as session:
                written += await service.rollup(session, now, intervals, names[i : i + ROLLUP_BATCH])
        async with self.rt.db.transaction() as session:
            await service.prune(session, now)
            gone = sorted(await service.alerted_monitors(session) - set(self.specs))
        if gone:
            await self._submit(
                [
                    Signal(
                        action="resolve",
                        dedup_key=f"monitor:{n}",
                        summary=f"Monitor {n} was removed or disabled",
                    )
                    for n in gone
                ]
            )
            async with self.rt.db.transaction() as session:
                await service.set_alerted(session, dict.fromkeys(gone, False))
        return written

    async def serve(self) -> None:
        """Run until cancelled: start monitors as their slots come, write results in the background."""
        writer = asyncio.create_task(self._write_forever(), name="tocsin-monitor-writer")
        try:
            while True:
                try:
                    await self.tick()
                except Exception:
                    log.exception("monitor tick failed")
                    await asyncio.sleep(1.0)
                await asyncio.sleep(self._idle())
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            await self.close()

    def _idle(self) -> float:
        due = self.next_due()
        if due is None:
            return 0.5
        return min(max((due - self.rt.clock.now()).total_seconds(), 0.005), 0.5)

    async def _write_forever(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            try:
                await self.flush()
            except Exception:
                log.exception("writing monitor results failed; retrying")

    async def close(self) -> None:
        """Stop the runs in flight, write what finished, give up the lease, close connections."""
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
        if self._renewing is not None:
            await asyncio.gather(self._renewing, return_exceptions=True)
        try:
            await self.flush()
            if self._standings is not None:
                async with self.rt.db.transaction() as session:
                    await service.release_lease(session, self.holder)
        except Exception:
            log.exception("could not write the last monitor results")
        self._forget()
        await self.checker.aclose()


def _log_failure(task: asyncio.Task[bool]) -> None:
    if not task.cancelled() and task.exception() is not None:
        # The lease stays ours until it runs out; the next tick tries again.
        log.warning("renewing the monitor runner lease failed", exc_info=task.exception())
