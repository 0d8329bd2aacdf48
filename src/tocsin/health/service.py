"""What Tocsin reports about itself: database reachability, open incidents, SLA breaches."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tocsin import __version__
from tocsin.core.clock import Clock
from tocsin.db.engine import Database
from tocsin.incidents import service as incidents
from tocsin.incidents import sla

# A load balancer's probe must get an answer, not hang on a database that drops packets.
PING_TIMEOUT_SECONDS = 3.0


async def database_status(db: Database, within: float = PING_TIMEOUT_SECONDS) -> tuple[bool, str]:
    """Whether a `SELECT 1` succeeds within `within` seconds, and why not."""
    try:
        async with asyncio.timeout(within):
            await db.ping()
    except TimeoutError:
        return False, f"no answer within {within:g} s"
    except Exception as exc:  # any failure to reach the database is the answer, not an error
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unreachable'}"
    return True, "ok"


async def health(db: Database, within: float = PING_TIMEOUT_SECONDS) -> dict[str, Any]:
    """Tocsin's health: `status` is `ok` only when the database answers within `within` seconds."""
    ok, detail = await database_status(db, within)
    return {
        "status": "ok" if ok else "unhealthy",
        "version": __version__,
        "database": {
            "status": "ok" if ok else "unreachable",
            "backend": db.engine.dialect.name,
            "detail": detail,
        },
    }


async def incident_summary(session: AsyncSession, clock: Clock) -> dict[str, Any]:
    """Open incidents by severity and how many are past each deadline."""
    now = clock.now()
    open_rows = await incidents.open_incidents(session)
    by_severity: dict[str, int] = {}
    breaches = {"response": 0, "resolution": 0, "update": 0, "status_page": 0, "escalation_due": 0}
    for row in open_rows:
        by_severity[row.severity] = by_severity.get(row.severity, 0) + 1
        b = sla.breaches(row, now)
        breaches["response"] += b.response
        breaches["resolution"] += b.resolution
        breaches["update"] += b.update
        breaches["status_page"] += b.status_page
        breaches["escalation_due"] += b.escalation
    return {
        "open_incidents": len(open_rows),
        "open_by_severity": dict(sorted(by_severity.items())),
        "sla_breaches": breaches,
        "breached_incidents": sum(1 for r in open_rows if sla.breaches(r, now).any),
    }
