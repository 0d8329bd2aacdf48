"""`tocsin integration|silence|alert ...` against a real server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from typer.testing import CliRunner

from tocsin.cli.main import app
from tocsin.testing import bearer, served

TOKEN = "tok_cli-alerts-admin"
runner = CliRunner()


@pytest.fixture
def url(database_url: str) -> Iterator[str]:
    with served(database_url, TOKEN) as base:
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
