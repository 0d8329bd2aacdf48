"""API shapes for on-call: who is on call now and next, rotations with their gaps, overrides."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from tocsin.policy.oncall import Layer

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$")]


class RotationNow(BaseModel):
    """One rotation at one instant: who holds it (and since/until when) and who takes over next."""

    rotation: str
    layer: Layer
    person: str | None = Field(description="on call now; null when nobody is (a gap)")
    full_name: str | None = None
    override: bool = Field(False, description="true when the person holds it by an override")
    since: datetime | None = None
    until: datetime | None = Field(None, description="when the current person's turn ends")
    next_person: str | None = Field(None, description="the next different person on call")
    next_at: datetime | None = Field(None, description="when the next person takes over (the hand-off)")


class LayerNow(BaseModel):
    layer: Layer
    rotations: list[RotationNow]


class TeamNow(BaseModel):
    """A team's layers (primary, backup, management) with their rotations, at one instant."""

    team: str
    title: str
    services: list[str]
    layers: list[LayerNow]


class OnCallOut(BaseModel):
    at: datetime
    timezone: str
    teams: list[TeamNow]


class Span(BaseModel):
    starts_at: datetime
    ends_at: datetime


class ActiveOut(BaseModel):
    starts: str = Field(description='"from" in the policy, HH:MM')
    ends: str = Field(description='"to" in the policy, HH:MM')
    days: list[str]


class RotationOut(BaseModel):
    """A rotation as the policy defines it, with its gaps in the next 4 weeks and its iCal feed."""

    name: str
    team: str
    layer: Layer
    members: list[str]
    handoff: str
    start: str = Field(description="local wall-clock time in the policy time zone")
    active: ActiveOut | None
    gaps: list[Span] = Field(description="times in the next 4 weeks when nobody is on call in this rotation")
    calendar_url: str = Field(description="the iCal feed, with its token (calendar apps send no headers)")


class TeamGaps(BaseModel):
    team: str
    primary_gaps: list[Span] = Field(description="times in the next 4 weeks with nobody on call as primary")


class RotationsOut(BaseModel):
    timezone: str
    rotations: list[RotationOut]
    teams: list[TeamGaps]
    warnings: list[str]


class OverrideCreate(BaseModel):
    """ "I'll take Tuesday night": `person` covers `rotation` from `starts_at` to `ends_at`."""

    model_config = ConfigDict(extra="forbid")

    rotation: Name
    person: Name
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    note: str = Field("", max_length=2000)


class OverrideOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    rotation: str
    person: str
    starts_at: datetime
    ends_at: datetime
    note: str
    created_by: str
    created_at: datetime
