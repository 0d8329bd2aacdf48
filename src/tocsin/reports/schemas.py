"""API shapes of user reports, and the text rules every channel shares."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

MAX_DESCRIPTION = 5_000
MAX_EMAIL = 254

Channel = Literal["web", "api", "email"]
TriageStatus = Literal["new", "linked", "dismissed"]

# Everything but newline: C0, DEL, C1, and the Unicode line and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)


def normalize_newlines(value: object) -> object:
    """Browsers send CRLF from a textarea and people paste tabs: keep the text, lose the controls."""
    if not isinstance(value, str):
        return value
    return value.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")


def clean_text(text: str, limit: int) -> str:
    """Untrusted text (an email) made fit for a report: controls dropped, newlines kept, bounded."""
    text = _CONTROL.sub("", str(normalize_newlines(text))).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _description(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (other than newlines)")
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    return value


def _email(value: str) -> str:
    value = value.strip()
    if not _EMAIL.fullmatch(value):
        raise ValueError("is not an email address")
    return value


def valid_email(value: str) -> str | None:
    """The address if it is one we can write back to, else None."""
    try:
        return _email(value) if len(value) <= MAX_EMAIL else None
    except ValueError:
        return None


Description = Annotated[
    str,
    BeforeValidator(normalize_newlines),
    Field(min_length=1, max_length=MAX_DESCRIPTION, description="what is wrong, in the reporter's words"),
    AfterValidator(_description),
]
Email = Annotated[
    str, Field(max_length=MAX_EMAIL, description="where to follow up; optional"), AfterValidator(_email)
]
ComponentName = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9-]{0,63}$",
        description="a component of the policy's services; null when the reporter is not sure",
        examples=["authentication"],
    ),
]
IncidentRef = Annotated[str, Field(pattern=r"^(?:[Ii][Nn][Cc]-)?[0-9]{1,9}$", examples=["INC-42"])]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReportCreate(Strict):
    """A user report: what is wrong, optionally which component and how to reach the reporter."""

    component: ComponentName | None = None
    description: Description
    email: Email | None = None


class ReportReceipt(BaseModel):
    """What a reporter learns: the report's number."""

    id: int
    component: str | None
    created_at: datetime
    status: TriageStatus


class ReportOut(BaseModel):
    id: int
    component: str | None
    description: str
    email: str | None
    channel: Channel
    client: str
    created_at: datetime
    status: TriageStatus
    incident: str | None = Field(description="the incident it is linked to, as INC-<number>")
    triaged_by: str | None
    triaged_at: datetime | None


class ReportPage(BaseModel):
    items: list[ReportOut]
    total: int
    limit: int
    offset: int


class Triage(Strict):
    """Link a report to an open incident (`incident` required), or dismiss it (no `incident`)."""

    action: Literal["link", "dismiss"]
    incident: IncidentRef | Annotated[int, Field(ge=1, le=2**31 - 1)] | None = Field(
        default=None, description="the open incident to link to (link only): INC-42 or 42"
    )
