"""`tocsin integration|silence|alert ...` against a real server."""

from __future__ import annotations

import json
import re
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


def test_an_integration_is_disabled_enabled_and_given_a_new_key(url: str) -> None:
    """A leaked key is dealt with from the command line: disabled at once, or replaced."""
    key = cli(url, "integration", "create", "gen", "--kind", "generic").strip()
    pd_key = cli(url, "integration", "create", "scripts", "--kind", "pagerduty").strip()

    def generic(with_key: str) -> int:
        body = {"summary": "Checkout broken", "severity": "critical"}
        return httpx.post(
            f"{url}/api/v1/integrations/generic", json=body, headers=bearer(with_key)
        ).status_code

    def pagerduty(with_key: str) -> httpx.Response:
        event = {
            "routing_key": with_key,
            "event_action": "trigger",
            "payload": {"summary": "Magic links failing", "source": "sendgrid", "severity": "error"},
        }
        return httpx.post(f"{url}/v2/enqueue", json=event)

    assert generic(key) == 202 and pagerduty(pd_key).status_code == 202
    assert cli(url, "integration", "disable", "gen") == "integration gen disabled\n"
    assert cli(url, "integration", "disable", "scripts") == "integration scripts disabled\n"
    assert generic(key) == 401
    refused = pagerduty(pd_key)
    assert refused.status_code == 400 and refused.json()["errors"] == ["Invalid routing key"]
    listed = {r["name"]: r for r in json.loads(cli(url, "integration", "list", "--json"))}
    assert listed["gen"]["disabled_at"] and listed["scripts"]["disabled_at"]
    assert "disabled" in cli(url, "integration", "list")
    assert cli(url, "integration", "enable", "gen") == "integration gen enabled\n"
    assert generic(key) == 202

    rotated = json.loads(cli(url, "integration", "rotate-key", "gen", "--json"))
    assert len(rotated["key"]) == 32 and rotated["key"] != key and rotated["disabled_at"] is None
    assert generic(key) == 401 and generic(rotated["key"]) == 202
    printed = runner.invoke(
        app, ["integration", "rotate-key", "gen"], env={"TOCSIN_URL": url, "TOCSIN_TOKEN": TOKEN}
    )
    assert printed.exit_code == 0 and generic(printed.stdout.strip()) == 202
    assert "integrations/generic" in printed.stderr  # where the new key goes

    missing = runner.invoke(
        app, ["integration", "disable", "nope"], env={"TOCSIN_URL": url, "TOCSIN_TOKEN": TOKEN}
    )
    assert missing.exit_code != 0 and "no integration 'nope'" in missing.stderr


def test_bad_matcher_is_a_usage_error(url: str) -> None:
    result = runner.invoke(
        app, ["silence", "add", "-m", "no operator"], env={"TOCSIN_URL": url, "TOCSIN_TOKEN": TOKEN}
    )
    assert result.exit_code == 2 and "not a matcher" in result.stderr
    bad = runner.invoke(
        app, ["alert", "list", "-f", 'a="open'], env={"TOCSIN_URL": url, "TOCSIN_TOKEN": TOKEN}
    )
    assert bad.exit_code == 2 and "--filter" in bad.stderr and "no closing quote" in bad.stderr


def test_alerts_are_filtered_and_counted_from_the_terminal(url: str) -> None:
    key = cli(url, "integration", "create", "prom", "--kind", "prometheus").strip()
    sent = [{"labels": {"alertname": "DiskFull", "instance": f"db-{i}"}} for i in range(3)]
    sent.append({"labels": {"alertname": "HighLatency", "instance": "lb-1"}})
    assert httpx.post(f"{url}/api/v2/alerts", json=sent, headers=bearer(key)).status_code == 200
    groups = [re.findall(r"[\w-]+", line) for line in cli(url, "alert", "groups").splitlines()]
    assert [words for words in groups if words and words[0] in ("DiskFull", "HighLatency")] == [
        ["DiskFull", "3"],
        ["HighLatency", "1"],
    ]
    counted = json.loads(
        cli(url, "alert", "groups", "--by", "instance", "-f", "alertname=DiskFull", "--json")
    )
    assert counted == [{"value": f"db-{i}", "count": 1} for i in range(3)]
    found = json.loads(cli(url, "alert", "list", "-f", 'alertname="DiskFull", instance=~"db-[12]"', "--json"))
    assert [a["labels"]["instance"] for a in found] == ["db-2", "db-1"]
    two = json.loads(cli(url, "alert", "list", "-f", "alertname=DiskFull", "-f", "instance=db-0", "--json"))
    assert [a["labels"]["instance"] for a in two] == ["db-0"]
    of_incident = json.loads(cli(url, "alert", "list", "--incident", found[0]["incident"], "--json"))
    assert len(of_incident) == 4
    table = cli(url, "alert", "list", "--filter", "instance=lb-1")
    assert "HighLatency" in table and "DiskFull" not in table
    assert (
        cli(url, "alert", "resolve", "-f", "alertname=DiskFull", "-f", 'instance=~"db-[01]"').strip()
        == "resolved 2"
    )
    left = json.loads(cli(url, "alert", "list", "-f", "alertname=DiskFull", "--json"))
    assert [a["labels"]["instance"] for a in left] == ["db-2"]
    done = json.loads(cli(url, "alert", "resolve", str(left[0]["id"]), "99999", "--json"))
    assert done == {"resolved": [left[0]["id"]], "skipped": [99999]}
    assert cli(url, "alert", "resolve", "-f", "alertname=DiskFull").strip() == "no open alert matches"
    nothing = runner.invoke(app, ["alert", "resolve"], env={"TOCSIN_URL": url, "TOCSIN_TOKEN": TOKEN})
    assert nothing.exit_code == 2 and "--filter" in nothing.stderr
