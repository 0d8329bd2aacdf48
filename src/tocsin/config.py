"""Settings, read once from TOCSIN_* environment variables and passed down."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tocsin.core.durations import parse_duration


def _duration(value: object) -> object:
    return parse_duration(value) if isinstance(value, str) else value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


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
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="`tocsin serve` processes sharing the port, each a whole Tocsin",
    )
    smtp_listen: str | None = Field(
        default=None,
        description="HOST:PORT for the inbound SMTP listener that turns mail to support_address into user reports; off when unset",
    )
    support_address: str = Field(
        default="support@localhost", description="the address whose mail becomes user reports"
    )
    slack_token: str | None = Field(
        default=None, description="Slack bot token (xoxb-...); Slack is off when unset"
    )
    slack_signing_secret: str | None = Field(
        default=None, description="Slack app signing secret: verifies the Acknowledge button's requests"
    )
    slack_api_url: str = Field(default="https://slack.com/api/", description="base URL of Slack's Web API")
    smtp_url: str | None = Field(
        default=None,
        description="outgoing mail server, smtp://user:pass@host:587?starttls=true or smtps://...",
    )
    mail_from: str = Field(default="tocsin@localhost", description="From address of the mail Tocsin sends")
    webhook_secret: str | None = Field(default=None, description="key that signs outgoing webhooks")
    sentry_client_secret: str | None = Field(
        default=None,
        description="Sentry integration's client secret: when set, Sentry webhooks must carry a valid "
        "Sentry-Hook-Signature",
    )
    webhook_timeout: float = Field(default=10.0, gt=0, le=60, description="seconds a webhook may take")
    delivery_give_up_after: Duration = Field(
        default=timedelta(hours=24), description="how long a failing message is retried before it fails"
    )
