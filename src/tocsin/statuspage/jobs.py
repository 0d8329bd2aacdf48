"""Background work of the status page: the maintenance clock, component tracking, the policy's export."""

from __future__ import annotations

from pathlib import Path

from tocsin.runtime import Runtime
from tocsin.statuspage import export, maintenance, service, subscribers
from tocsin.statuspage.links import links_in


async def maintenance_tick(rt: Runtime) -> int:
    """Reminders, starts and ends of maintenance windows that are due (how many); new components start tracking."""
    async with rt.db.transaction() as session:
        signed = await links_in(session, rt)
        now = rt.clock.now()
        await service.track(session, rt.policy, now)
        changed = await maintenance.tick(session, rt.clock, rt.policy, signed)
        await subscribers.prune_attempts(session, now)
    if changed:
        rt.bus.publish("outbox")
    return changed


def register(rt: Runtime) -> None:
    rt.loops.add("status-maintenance", 5.0, lambda: maintenance_tick(rt))
    directory = rt.policy.status_page.export_dir
    if directory:
        target = export.Target(Path(directory), live_url=rt.settings.public_url)
        watcher = export.Watcher(rt.db, rt.clock, rt.policy, target)
        rt.loops.add("status-export", 1.0, watcher.step)
