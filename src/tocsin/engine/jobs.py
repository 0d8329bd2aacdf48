"""Wire the engine into a process: the timer worker loop and, on PostgreSQL, the NOTIFY listener."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tocsin.engine.worker import Worker, listen

if TYPE_CHECKING:
    from tocsin.runtime import Runtime


def register(rt: Runtime) -> Worker:
    """Add the timer worker (and the LISTEN relay on PostgreSQL) to the runtime's loops."""
    worker = Worker(rt.db, rt.clock, rt.handlers)
    rt.loops.add("timers", 1.0, worker.tick, wait=lambda: worker.wait(rt.bus))
    if not rt.db.is_sqlite:
        rt.loops.add("listen", 1.0, lambda: listen(rt.db, rt.bus))
    return worker
