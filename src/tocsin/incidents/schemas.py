"""API shapes of incidents and their timeline."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from tocsin.incidents.lifecycle import Status

# C0 and C1 control characters (text keeps tab and newlines; one-line fields also refuse line separators).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINE_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _one_line(value: str) -> str:
    if _LINE_CONTROL.search(value):
        raise ValueError("must be one line without control characters")
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


def _date_time_text(value: object) -> object:
    # Pydantic would read 0 or 1.7e9 as seconds since 1970; the API documents an ISO 8601 string.
    if isinstance(value, int | float):
        raise ValueError("must be an ISO 8601 date-time string with a time zone, e.g. 2026-11-26T15:00:00Z")
    return value


Title = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_one_line)]
Text = Annotated[str, Field(max_length=20_000), AfterValidator(_no_control)]
LongText = Annotated[str, Field(max_length=200_000), AfterValidator(_no_control)]
Reason = Annotated[str, Field(min_length=1, max_length=2_000), AfterValidator(_no_control)]
Person = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@ -]{0,63}$")]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
DateTime = Annotated[datetime, BeforeValidator(_date_time_text)]
SeverityKey = Annotated[str, Field(pattern=r"^P[0-9]$", examples=["P1"])]
Source = Literal["manual", "alert", "monitor", "user_report"]
RoleKind = Literal["commander", "scribe", "communications", "responder"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IncidentCreate(Strict):
    title: Title
    severity: SeverityKey
    description: Text = ""
    services: list[Slug] = Field(default_factory=list, max_length=50)
    components: list[Slug] = Field(default_factory=list, max_length=50)
    customer_facing: bool | None = Field(
        default=None,
        strict=True,  # "false" or 0 for a flag is a client bug to report, not to guess at
        description="default: true for the two most severe levels (P0, P1), else false",
    )
    source: Source = "manual"
    detected_at: DateTime | None = Field(default=None, description="when the trouble began; default now")
    commander: Person | None = None


class Acknowledge(Strict):
    note: Text = ""


class StatusChange(Strict):
    status: Status
    note: Text = ""


class Resolve(Strict):
    summary: Text = ""
    override_reason: Text = Field(
        default="",
        description="resolve although the stability watch has not passed or alerts still fire, and why",
    )


class Reopen(Strict):
    reason: Reason


class SeverityChange(Strict):
    severity: SeverityKey
    reason: Reason


class RoleChange(Strict):
    role: RoleKind
    person: Person
    action: Literal["assign", "unassign"] = "assign"


class Note(Strict):
    text: Annotated[str, Field(min_length=1, max_length=20_000), AfterValidator(_no_control)]


class HypothesisCreate(Strict):
    text: Annotated[str, Field(min_length=1, max_length=5_000), AfterValidator(_no_control)]


class HypothesisResult(Strict):
    state: Literal["confirmed", "refuted"]
    result: Text = ""


class CommandRun(Strict):
    command: Annotated[str, Field(min_length=1, max_length=10_000), AfterValidator(_no_control)]
    output: LongText = ""
    exit_code: int | None = Field(default=None, ge=-255, le=255, strict=True)  # not true/false or "1"


class Assignment(Strict):
    person: Person
    task: Annotated[str, Field(min_length=1, max_length=2_000), AfterValidator(_no_control)]


class RoleOut(BaseModel):
    role: RoleKind
    person: str
    assigned_at: datetime
    assigned_by: str
    ended_at: datetime | None
    ended_by: str | None


class Roles(BaseModel):
    commander: str | None
    scribe: str | None
    communications: str | None
    responders: list[str]


class Sla(BaseModel):
    response_due_at: datetime
    resolution_due_at: datetime
    escalation_due_at: datetime | None
    next_update_due_at: datetime | None
    status_page_due_at: datetime | None
    response_breached: bool
    resolution_breached: bool
    escalation_due: bool
    update_overdue: bool
    status_page_breached: bool
    time_to_acknowledge_seconds: float | None
    time_to_resolve_seconds: float | None


class IncidentOut(BaseModel):
    id: str = Field(examples=["INC-42"])
    number: int
    title: str
    description: str
    severity: str
    status: Status
    source: Source
    customer_facing: bool
    services: list[str]
    components: list[str]
    channel: str
    detected_at: datetime
    acknowledged_at: datetime | None
    mitigated_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    last_update_at: datetime | None
    resolved_itself: bool = Field(
        description="resolved because its alerts all cleared before anyone acknowledged it"
    )
    flaps: int = Field(
        description="times its alert came back after it resolved itself and reopened it (flapping); "
        "once reopened, it waits for an acknowledgement instead of resolving itself"
    )
    created_by: str
    created_at: datetime
    updated_at: datetime
    timezone: str
    sla: Sla
    roles: Roles
    allowed_transitions: list[Status]


class IncidentPage(BaseModel):
    items: list[IncidentOut]
    total: int
    limit: int
    offset: int


class EventOut(BaseModel):
    seq: int
    kind: str
    actor: str
    at: datetime
    data: dict[str, Any]
    hash: str


class VerifyOut(BaseModel):
    id: str
    intact: bool
    events: int
    detail: str
