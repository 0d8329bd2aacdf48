"""Settings, read once from TOCSIN_* environment variables and passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything Tocsin reads from its environment; never read at import time."""

    model_config = SettingsConfigDict(env_prefix="TOCSIN_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./var/tocsin.db"
    policy: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    bootstrap_token: str | None = None
    secret_key: str | None = None
    public_url: str | None = None
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    session_days: int = Field(default=14, ge=1)
    cookie_secure: bool = False
    background: bool = Field(
        default=True, description="run background loops (alert expiry, monitors) in this process"
    )
    smtp_listen: str | None = Field(
        default=None,
        description="HOST:PORT for the inbound SMTP listener that turns mail to support_address into user reports; off when unset",
    )
    support_address: str = Field(
        default="support@localhost", description="the address whose mail becomes user reports"
    )
