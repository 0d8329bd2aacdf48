"""Report work that needs the whole runtime: taking a report in and raising burst alerts.

A report and its burst's "alert pending" mark commit together; the alert then goes through the alert
pipeline (its own commit), and a background loop retries any alert a crash left pending.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from tocsin.alerts.integrations import builtin
from tocsin.alerts.signals import Signal
from tocsin.db.engine import advisory_lock
from tocsin.reports import service
from tocsin.reports.models import Report
from tocsin.reports.schemas import Channel, ReportCreate
from tocsin.runtime import Runtime

log = logging.getLogger("tocsin.reports")

INTEGRATION_KIND = "reports"
RETRY_AFTER = timedelta(minutes=1)  # a pending alert older than this was left by a crash or an error
RETRY_EVERY = 30.0


async def take(rt: Runtime, data: ReportCreate, *, channel: Channel, client: str, reporter: str) -> Report:
    """Store a report (RateLimited, InvalidInput) and raise its component's alert if it completes a burst."""
    async with rt.db.transaction() as session:
        received = await service.receive(
            session, rt.clock, rt.policy, data, channel=channel, client=client, reporter=reporter
        )
    log.info("user report #%d via %s about %s", received.report.id, channel, data.component or "-")
    if received.alert_due is not None:
        try:
            await raise_alert(rt, received.alert_due)
        except Exception:
            # The report is stored and its alert marked pending: the retry loop raises it.
            log.exception("could not raise the user-report alert for %s; will retry", received.alert_due)
    return received.report


async def raise_alert(rt: Runtime, component: str, *, retry: bool = False) -> bool:
    """Send a burst's pending alert through the builtin `reports` integration; False if none was due."""
    async with rt.db.transaction() as session:
        burst = await service.pending_burst(session, component)
        if burst is None:
            return False
        await advisory_lock(session, "tocsin-builtin-integration")
        integration = await builtin(session, rt.clock, rt.policy, INTEGRATION_KIND)
        previous_open = await service.previous_incident_open(session, burst)
        trigger = Signal(
            action="trigger",
            dedup_key=f"reports:{component}",
            summary=service.burst_summary(rt.policy, burst),
            labels={"component": component, "source": "user-reports"},
            details={
                "reporters": burst.reporters,
                "threshold": rt.policy.alerting.reports_threshold,
                "window": int(rt.policy.alerting.reports_window.total_seconds()),
                "burst_started_at": burst.started_at.isoformat(),
            },
            links=[{"href": "/reports", "text": "User reports awaiting triage"}],
            source="user reports",
        )
    signals = [trigger]
    if previous_open is False and not retry:
        # The last burst's alert belongs to an incident that is over: close it so this burst opens a
        # new alert (and incident) instead of repeating the old one. A retry sends only the trigger,
        # which is safe to repeat: the first attempt may have got through.
        signals.insert(0, Signal(action="resolve", dedup_key=trigger.dedup_key))
    outcomes = await rt.ingestor.submit(integration, signals)
    placed = outcomes[-1]
    async with rt.db.transaction() as session:
        await service.alert_raised(
            session,
            rt.clock,
            rt.policy,
            component,
            placed.incident_id,
            joined=placed.result == "repeated" and not retry,
        )
    if placed.incident_id is not None:
        rt.bus.publish(f"incident:{placed.incident_id}", "incidents")
    return True


async def retry_pending(rt: Runtime) -> int:
    """Raise the burst alerts that a crash or an error left pending; returns how many were raised."""
    async with rt.db.session() as session:
        overdue = await service.overdue_alerts(session, rt.clock.now() - RETRY_AFTER)
    raised = 0
    for component in overdue:
        raised += await raise_alert(rt, component, retry=True)
    return raised


def register(rt: Runtime) -> None:
    rt.loops.add("report-alerts", RETRY_EVERY, lambda: retry_pending(rt))
