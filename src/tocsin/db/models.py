"""Every domain's tables, imported in one place so Alembic sees the whole schema."""

from tocsin.alerts.models import Alert, AlertGroup, Integration, Silence
from tocsin.auth.models import ApiToken, User, WebSession
from tocsin.db.base import Base
from tocsin.engine.models import InstanceSecret, Timer
from tocsin.incidents.models import Incident, RoleAssignment, TimelineEvent
from tocsin.monitors.detector_models import ErrorRateState, HeartbeatState
from tocsin.monitors.models import MonitorDaily, MonitorHourly, MonitorLease, MonitorResult, MonitorState
from tocsin.notify.models import OutboxMessage
from tocsin.oncall.models import Escalation, Override, Page
from tocsin.reports.models import Report, ReportBurst
from tocsin.statuspage.models import (
    ComponentChange,
    Maintenance,
    PageVersion,
    StatusComponent,
    StatusUpdate,
    SubscribeAttempt,
    Subscriber,
)

__all__ = [
    "Alert",
    "AlertGroup",
    "ApiToken",
    "Base",
    "ComponentChange",
    "ErrorRateState",
    "Escalation",
    "HeartbeatState",
    "Incident",
    "InstanceSecret",
    "Integration",
    "Maintenance",
    "MonitorDaily",
    "MonitorHourly",
    "MonitorLease",
    "MonitorResult",
    "MonitorState",
    "OutboxMessage",
    "Override",
    "Page",
    "PageVersion",
    "Report",
    "ReportBurst",
    "RoleAssignment",
    "Silence",
    "StatusComponent",
    "StatusUpdate",
    "SubscribeAttempt",
    "Subscriber",
    "TimelineEvent",
    "Timer",
    "User",
    "WebSession",
]
