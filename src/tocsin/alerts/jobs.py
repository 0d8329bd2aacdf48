"""Background work of the alerts domain."""

from __future__ import annotations

from tocsin.alerts import grouping, service
from tocsin.runtime import Runtime


async def expire_alerts(rt: Runtime) -> int:
    """Resolve Prometheus alerts whose endsAt passed without a re-send; unmute alerts whose silence
    ended; tell timelines of quiet storms."""
    async with rt.db.transaction() as session:
        count = await service.expire(session, rt.clock, rt.policy)
        count += await service.unmute_ended(session, rt.clock, rt.policy)
        count += await grouping.tell_quiet_groups(session, rt.clock)
    if count:
        rt.bus.publish("incidents")
    return count


def register(rt: Runtime) -> None:
    rt.loops.add("alert-expiry", 5.0, lambda: expire_alerts(rt))
