"""API shapes for users and tokens."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

RoleName = Literal["viewer", "responder", "commander", "admin"]
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
Name = Field(pattern=NAME_PATTERN, description="login name: lowercase letters, digits, . _ -")

# PostgreSQL text cannot hold NUL, and no label needs a control character.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _one_line(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


Label = Annotated[str, AfterValidator(_one_line)]
Email = Annotated[str, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$"), AfterValidator(_one_line)]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Name
    display_name: Label = Field(default="", max_length=200)
    email: Email | None = None
    role: RoleName = "responder"
    password: str | None = Field(default=None, min_length=8, max_length=1024)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    display_name: str
    email: str | None
    role: RoleName
    created_at: datetime
    disabled_at: datetime | None = Field(
        description="when an admin disabled the user (their tokens and console sign-in are refused)"
    )


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Label = Field(default="cli", min_length=1, max_length=100)
    user: str | None = Field(
        default=None, pattern=NAME_PATTERN, description="another user's name (admins only)"
    )


class TokenOut(BaseModel):
    name: str
    user: str
    role: RoleName
    token: str = Field(description="shown once; store it now")


class TokenInfo(BaseModel):
    """A token as listed: never its secret, nor the digest the server keeps of it."""

    id: int
    name: str
    user: str
    created_at: datetime
    last_used_at: datetime | None = Field(
        description="when it last authenticated a request, to within 10 minutes (null: never used)"
    )
    revoked_at: datetime | None
