"""API shapes of integrations, alerts and silences."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tocsin.incidents.schemas import DateTime
from tocsin.policy.alerting import IntegrationKind, SeverityRule

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IntegrationCreate(Strict):
    name: Slug
    kind: IntegrationKind
    service: Slug | None = None
    severity_rules: list[SeverityRule] = Field(default_factory=list, max_length=100)


class IntegrationOut(BaseModel):
    name: str
    kind: str
    service: str | None
    severity_rules: list[dict[str, Any]]
    from_policy: bool
    created_at: datetime
    disabled_at: datetime | None
    endpoints: dict[str, str]


class IntegrationCreated(IntegrationOut):
    key: str = Field(description="the secret key: shown once")


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    integration: str
    dedup_key: str
    status: str
    summary: str
    severity: str
    severity_reason: str
    source: str
    service: str | None
    component: str | None
    labels: dict[str, Any]
    annotations: dict[str, Any]
    details: dict[str, Any] = Field(
        description="what the sender attached: PagerDuty's custom_details (and images), the generic"
        " webhook's details"
    )
    links: list[Any]
    starts_at: datetime
    ends_at: datetime | None
    first_seen_at: datetime
    last_seen_at: datetime
    count: int
    muted_by: str | None = Field(
        description="what mutes it: silence:<id>, maintenance:<id>, or inhibit:<id of the open alert whose"
        " inhibit rule mutes it>; null if nothing does"
    )
    incident: str | None
    resolved_at: datetime | None


class Matcher(Strict):
    name: Annotated[str, Field(min_length=1, max_length=128)]
    value: Annotated[str, Field(max_length=1024)]
    is_regex: bool = False
    is_equal: bool = True


class SilenceCreate(Strict):
    matchers: list[Matcher] = Field(min_length=1, max_length=50)
    starts_at: DateTime | None = None
    ends_at: DateTime
    comment: Annotated[str, Field(max_length=2000)] = ""
    kind: Literal["silence", "maintenance"] = "silence"


class SilenceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    matchers: list[dict[str, Any]]
    starts_at: datetime
    ends_at: datetime
    kind: str
    comment: str
    created_by: str
    created_at: datetime
    muting: int = 0  # open alerts it mutes now


class AlertsResolve(Strict):
    # Alert ids are 32-bit integers.
    ids: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(min_length=1, max_length=1000)


class AlertsResolved(BaseModel):
    resolved: list[int]  # resolved now
    skipped: list[int]  # not open (resolved already) or no such alert


class AlertGroupCount(BaseModel):
    value: str  # the label's value; "" for alerts without the label
    count: int
