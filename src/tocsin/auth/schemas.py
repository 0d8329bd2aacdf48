"""API shapes for users and tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RoleName = Literal["viewer", "responder", "commander", "admin"]
Name = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="login name: lowercase letters, digits, . _ -")


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Name
    display_name: str = Field(default="", max_length=200)
    email: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
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


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="cli", min_length=1, max_length=100)
    user: str | None = Field(default=None, description="another user's name (admins only)")


class TokenOut(BaseModel):
    name: str
    user: str
    role: RoleName
    token: str = Field(description="shown once; store it now")
