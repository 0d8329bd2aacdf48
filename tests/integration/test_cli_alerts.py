"""`tocsin integration|silence|alert ...` against a real server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from typer.testing import CliRunner

from tocsin.app import build_runtime, create_app
from tocsin.auth import service as auth
from tocsin.cli.main import app
from tocsin.config import Settings
from tocsin.db.engine import Database
from tocsin.testing import FakeClock, bearer, reset, running_server

TOKEN = "tok_cli-alerts-admin"
runner = CliRunner()


async def _prepare(database_url: str) -> None:
    db = Database(database_url)
    try:
        if not db.is_sqlite:
            await reset(db)
        async with db.transaction() as session:
            await auth.bootstrap(session, FakeClock(), TOKEN)
    finally:
        await db.dispose()


@pytest.fixture
def url(database_url: str) -> Iterator[str]:
    asyncio.run(_prepare(database_url))
    rt = build_runtime(
        Settings(database_url=database_url, background=False), clock=FakeClock(datetime.now(UTC))
    )
    with running_server(create_app(runtime=rt)) as base:
        yield base


def cli(url: str, *args: str) -> str:
    result = runner.invoke(app, list(args), env={"TOCSIN_URL": url, "TOCSIN_TOKEN": TOKEN, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_integration_silence_and_alert_commands(url: str) -> None:
    created = json.loads(
        cli(
            url, "integration", "create", "prod-am", "--kind", "alertmanager", "--service", "portal", "--json"
        )
    )
    assert len(created["key"]) == 32 and created["service"] == "portal"
    key = cli(url, "integration", "create", "gen", "--kind", "generic").strip()
    assert len(key) == 32
    assert "prod-am" in cli(url, "integration", "list")
    out = cli(
        url, "silence", "add", "-m", "alertname=~Disk.*", "--for", "2h", "--comment", "resizing volumes"
    )
    assert out.startswith("silence 1 until")
    listed = json.loads(cli(url, "silence", "list", "--json"))
    assert listed[0]["matchers"] == [
        {"name": "alertname", "value": "Disk.*", "is_regex": True, "is_equal": True}
    ]
    r = httpx.post(
        f"{url}/api/v1/integrations/generic",
        json={"summary": "Checkout broken", "severity": "critical"},
        headers=bearer(key),
    )
    assert r.status_code == 202
    assert "Checkout broken" in cli(url, "alert", "list")
    assert "ended" in cli(url, "silence", "expire", "1")
    assert json.loads(cli(url, "silence", "list", "--json")) == []


def test_bad_matcher_is_a_usage_error(url: str) -> None:
    result = runner.invoke(
        app, ["silence", "add", "-m", "no operator"], env={"TOCSIN_URL": url, "TOCSIN_TOKEN": TOKEN}
    )
    assert result.exit_code == 2 and "not a matcher" in result.stderr
