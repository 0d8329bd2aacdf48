"""The incident lifecycle: which status may follow which."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    triggered = "triggered"
    acknowledged = "acknowledged"
    investigating = "investigating"
    identified = "identified"
    mitigated = "mitigated"
    monitoring = "monitoring"
    resolved = "resolved"
    closed = "closed"


ACTIVE = (
    Status.triggered,
    Status.acknowledged,
    Status.investigating,
    Status.identified,
    Status.mitigated,
    Status.monitoring,
)

# Forward along the runbook's flow, plus the moves back that a failed fix needs
# (a mitigation that does not hold sends the team back to investigating).
TRANSITIONS: dict[Status, tuple[Status, ...]] = {
    Status.triggered: (*ACTIVE[1:], Status.resolved),
    Status.acknowledged: (*ACTIVE[2:], Status.resolved),
    Status.investigating: (Status.identified, Status.mitigated, Status.monitoring, Status.resolved),
    Status.identified: (Status.investigating, Status.mitigated, Status.monitoring, Status.resolved),
    Status.mitigated: (Status.investigating, Status.identified, Status.monitoring, Status.resolved),
    Status.monitoring: (Status.investigating, Status.identified, Status.mitigated, Status.resolved),
    Status.resolved: (Status.closed,),
    Status.closed: (),
}

REOPENABLE = (Status.resolved, Status.closed)
MITIGATED = (Status.mitigated, Status.monitoring, Status.resolved, Status.closed)


def allowed(current: Status) -> tuple[Status, ...]:
    return TRANSITIONS[current]


def is_open(status: str) -> bool:
    return Status(status) in ACTIVE
