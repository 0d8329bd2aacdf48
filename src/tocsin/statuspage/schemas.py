"""Request and answer shapes of the status page's own API (the public JSON is in compat.py)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from tocsin.statuspage.vocab import ComponentStatus, MaintenanceStatus, UpdateStatus

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _no_control(text: str) -> str:
    if _CONTROL.search(text):
        raise ValueError("must not contain control characters")
    return text.replace("\r\n", "\n")


Body = Annotated[str, Field(max_length=10_000), AfterValidator(_no_control)]
Title = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_control)]
ComponentName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StatusUpdateCreate(Strict):
    """A public update of an incident; what is left out is filled in from the policy and the incident."""

    status: UpdateStatus | None = Field(
        default=None, description="default: what the incident's own status suggests"
    )
    body: Body = Field(
        default="", description="the text; default: the policy's initial or resolution template, filled in"
    )
    components: dict[ComponentName, ComponentStatus] | None = Field(
        default=None,
        max_length=200,
        description="component -> new status; default: the incident's components, at the status its "
        "severity suggests (operational once resolved)",
    )


class StatusUpdateForm(Strict):
    """The console's form: component statuses come as `name=status` pairs (blank: not affected)."""

    status: UpdateStatus
    body: Annotated[str, Field(min_length=1, max_length=10_000), AfterValidator(_no_control)]
    components: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}=[a-z_]{1,24}$")]] = []


class AffectedComponent(BaseModel):
    code: str
    name: str
    old_status: ComponentStatus
    new_status: ComponentStatus


class StatusUpdateOut(BaseModel):
    id: int
    incident: str | None = Field(examples=["INC-42"])
    maintenance: int | None
    status: str
    body: str
    affected_components: list[AffectedComponent]
    created_by: str
    created_at: datetime


class Draft(BaseModel):
    """What the update form starts with: the template filled in, and the suggested component statuses."""

    status: UpdateStatus
    body: str
    components: dict[str, ComponentStatus]
    first: bool = Field(description="no update posted yet (the status-page deadline is still open)")


class MaintenanceMode(Strict):
    """Switch maintenance mode on or off for some components (none given: every component)."""

    on: bool
    components: list[ComponentName] = Field(default_factory=list, max_length=200)
    title: Annotated[str, Field(max_length=200), AfterValidator(_no_control)] = ""
    body: Body = ""
    until: AwareDatetime | None = Field(default=None, description="when on: switch off by itself at")


class MaintenanceCreate(Strict):
    """A scheduled maintenance window."""

    title: Title
    body: Body = ""
    components: list[ComponentName] = Field(default_factory=list, max_length=200)
    scheduled_for: AwareDatetime
    scheduled_until: AwareDatetime
    remind_before: int | None = Field(
        default=None, ge=0, le=7 * 24 * 60, description="minutes; default the policy's maintenance_reminder"
    )


class MaintenanceOut(BaseModel):
    id: int
    title: str
    body: str
    components: list[str]
    status: MaintenanceStatus
    mode: bool
    scheduled_for: datetime
    scheduled_until: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    remind_at: datetime | None
    reminded_at: datetime | None
    silence_id: int | None


class SubscriberOut(BaseModel):
    id: int
    channel: str
    target: str
    components: list[str]
    state: str
    created_at: datetime
    confirmed_at: datetime | None
