"""Wire the engine into a process: the timer worker loop and, on PostgreSQL, the NOTIFY listener."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tocsin.engine.worker import Worker, listen

if TYPE_CHECKING:
    from tocsin.runtime import Runtime


def register(rt: Runtime) -> Worker:
    """Add the timer worker (and the LISTEN relay on PostgreSQL) to the runtime's loops.

    While the runtime runs (`Runtime.start`), urgent timers (`Runtime.urgent`) due at once fire in the
    transaction that schedules them.
    """
    worker = Worker(rt.db, rt.clock, rt.handlers, inline=rt.urgent)
    rt.loops.add("timers", 1.0, worker.tick, wait=lambda: worker.wait(rt.bus))
    rt.commit_hooks["timers"] = worker.fire_due_now  # while it runs, urgent timers due at once fire inline
    if not rt.db.is_sqlite:
        rt.loops.add("listen", 1.0, lambda: listen(rt.db, rt.bus))
    return worker
