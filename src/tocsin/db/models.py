"""Every domain's tables, imported in one place so Alembic sees the whole schema."""

from tocsin.alerts.models import Alert, AlertGroup, Integration, Silence
from tocsin.auth.models import ApiToken, User, WebSession
from tocsin.db.base import Base
from tocsin.incidents.models import Incident, RoleAssignment, TimelineEvent

__all__ = [
    "Alert",
    "AlertGroup",
    "ApiToken",
    "Base",
    "Incident",
    "Integration",
    "RoleAssignment",
    "Silence",
    "TimelineEvent",
    "User",
    "WebSession",
]
