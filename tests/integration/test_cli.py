"""`tocsin incident ...` against a real Tocsin HTTP server (uvicorn in a thread), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from typer.testing import CliRunner, Result

from tocsin.cli.main import app
from tocsin.db.engine import Database
from tocsin.testing import bearer, served

ADMIN_TOKEN = "tok_cli-test-admin-token"
runner = CliRunner()


@dataclass
class Tocsin:
    url: str
    database_url: str

    def cli(self, *args: str, token: str = ADMIN_TOKEN, url: str | None = None) -> Result:
        env = {"TOCSIN_URL": url or self.url, "TOCSIN_TOKEN": token, "COLUMNS": "220"}
        return runner.invoke(app, list(args), env=env)

    def json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


@pytest.fixture
def tocsin(database_url: str) -> Iterator[Tocsin]:
    """A Tocsin server on a free port, its clock set to the wall clock so the CLI's countdowns agree."""
    with served(database_url, ADMIN_TOKEN) as url:
        yield Tocsin(url=url, database_url=database_url)


def one_error_line(result: Result) -> str:
    """The single stderr line of a failed command; nothing on stdout, no traceback."""
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


def test_declare_prints_the_id_or_the_object(tocsin: Tocsin) -> None:
    result = tocsin.cli(
        "incident", "declare", "Checkout is down", "--severity", "P1", "--component", "application"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "INC-1\n"
    assert "respond by" in result.stderr
    inc = tocsin.json(
        "incident",
        "declare",
        "Slow search",
        "-s",
        "p2",
        "--internal",
        "--service",
        "portal",
        "--commander",
        "alice",
    )
    assert inc["id"] == "INC-2" and inc["severity"] == "P2" and inc["customer_facing"] is False
    assert inc["services"] == ["portal"] and inc["roles"]["commander"] == "alice"


def test_list_shows_sla_countdowns(tocsin: Tocsin) -> None:
    now = datetime.now(UTC)
    # P0: respond within 15 minutes, resolve within an hour (the seed).
    tocsin.cli(
        "incident", "declare", "Login broken", "-s", "P0", "--detected-at", iso(now - timedelta(minutes=20))
    )
    tocsin.cli("incident", "declare", "Reports late", "-s", "P2", "--commander", "bob")
    result = tocsin.cli("incident", "list")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Incidents (2 of 2)" in out
    login = next(line for line in out.splitlines() if "Login broken" in line)
    assert "INC-1" in login and "P0" in login and "triggered" in login and "20m" in login
    assert "breached 5m ago" in login
    assert re.search(r"\b(39|40)m left", login)
    reports = next(line for line in out.splitlines() if "Reports late" in line)
    assert "bob" in reports and re.search(r"1h 59m left|2h 00m left", reports)
    page = tocsin.json("incident", "list", "--severity", "P0")
    assert [i["id"] for i in page["items"]] == ["INC-1"] and page["items"][0]["sla"]["response_breached"]
    assert tocsin.json("incident", "list", "--status", "resolved")["items"] == []


def test_show_has_every_field_in_the_policy_time_zone(tocsin: Tocsin) -> None:
    tocsin.cli(
        "incident", "declare", "Database slow", "-s", "P1", "--description", "p99 at 4s", "--commander", "ana"
    )
    tocsin.cli("incident", "note", "INC-1", "replica lag 30s")
    result = tocsin.cli("incident", "show", "1")
    assert result.exit_code == 0, result.output
    out = result.stdout
    inc = tocsin.json("incident", "show", "inc-1")
    for expected in (
        "INC-1",
        "Database slow",
        "p99 at 4s",
        "Response due",
        "Resolution due",
        "Commander",
        "ana",
    ):
        assert expected in out
    assert inc["channel"] in out and "replica lag 30s" in out and "declared" in out
    assert inc["timezone"] in out
    assert "investigating" in out  # the next statuses


def test_ack_then_an_invalid_transition_names_the_allowed_ones(tocsin: Tocsin) -> None:
    tocsin.cli("incident", "declare", "Errors spiking", "-s", "P1")
    result = tocsin.cli("incident", "ack", "INC-1", "--note", "on it")
    assert result.exit_code == 0, result.output
    assert "INC-1" in result.stdout and "acknowledged" in result.stdout
    result = tocsin.cli("incident", "status", "INC-1", "triggered")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "from acknowledged to triggered" in line and "allowed: investigating" in line
    assert (
        tocsin.json("incident", "status", "INC-1", "investigating", "--note", "looking")["status"]
        == "investigating"
    )
    assert tocsin.cli("incident", "status", "INC-1", "sleeping").exit_code == 2


def test_severity_needs_a_reason(tocsin: Tocsin) -> None:
    tocsin.cli("incident", "declare", "Partial outage", "-s", "P2")
    result = tocsin.cli("incident", "severity", "INC-1", "P0")
    assert result.exit_code == 2 and "--reason" in result.stderr
    inc = tocsin.json("incident", "severity", "INC-1", "P0", "--reason", "all regions now")
    assert inc["severity"] == "P0"


def test_hypothesis_proposed_then_confirmed(tocsin: Tocsin) -> None:
    tocsin.cli("incident", "declare", "Logins fail", "-s", "P1")
    result = tocsin.cli("incident", "hypothesis", "INC-1", "the auth cache expired")
    assert result.exit_code == 0, result.output
    number = int(re.findall(r"hypothesis #(\d+) proposed", result.stdout)[0])
    result = tocsin.cli(
        "incident", "hypothesis", "INC-1", "--confirm", str(number), "--result", "cache empty"
    )
    assert result.exit_code == 0, result.output
    assert f"hypothesis #{number} confirmed" in result.stdout
    assert tocsin.cli("incident", "hypothesis", "INC-1", "x", "--refute", "2").exit_code == 2
    assert tocsin.cli("incident", "hypothesis", "INC-1").exit_code == 2
    events = tocsin.json("incident", "timeline", "INC-1")
    assert events[-1]["data"] == {
        "hypothesis": number,
        "text": "the auth cache expired",
        "state": "confirmed",
        "result": "cache empty",
    }
    timeline = tocsin.cli("incident", "timeline", "INC-1").stdout
    assert f"hypothesis #{number} proposed" in timeline and f"hypothesis #{number} confirmed" in timeline


def test_command_run_records_output_and_exit_code(tocsin: Tocsin) -> None:
    tocsin.cli("incident", "declare", "Disk full", "-s", "P2")
    result = tocsin.cli("incident", "command", "INC-1", "--run", "echo hello; exit 3")
    assert result.exit_code == 0, result.output
    assert "hello" in result.stdout and "exit 3" in result.stdout
    event = tocsin.json("incident", "timeline", "INC-1")[-1]
    assert event["kind"] == "command"
    assert event["data"] == {"command": "echo hello; exit 3", "output": "hello\n", "exit_code": 3}
    timeline = tocsin.cli("incident", "timeline", "INC-1").stdout
    assert "$ echo hello; exit 3  exit 3" in timeline and "hello" in timeline


def test_command_run_is_killed_after_its_timeout(tocsin: Tocsin) -> None:
    tocsin.cli("incident", "declare", "Hung job", "-s", "P3")
    event = tocsin.json("incident", "command", "INC-1", "--run", "echo start; sleep 30", "--timeout", "0.5")
    assert event["data"]["exit_code"] == -9
    assert (
        event["data"]["output"].startswith("start\n")
        and "killed after 0.5s timeout" in event["data"]["output"]
    )


def test_command_with_given_output_strips_terminal_codes(tocsin: Tocsin) -> None:
    tocsin.cli("incident", "declare", "Pods crashing", "-s", "P2")
    output = "\x1b[31mCrashLoopBackOff\x1b[0m\r\n"
    event = tocsin.json(
        "incident", "command", "1", "kubectl get pods", "--output", output, "--exit-code", "0"
    )
    assert event["data"] == {"command": "kubectl get pods", "output": "CrashLoopBackOff\n", "exit_code": 0}
    result = tocsin.cli("incident", "command", "1", "ls", "--run", "--output", "x")
    assert result.exit_code == 2


def test_timeline_reads_every_kind_and_the_chain_verifies(tocsin: Tocsin) -> None:
    tocsin.cli("incident", "declare", "Payments failing", "-s", "P0")
    for args in (
        ("ack", "INC-1"),
        ("role", "INC-1", "scribe", "sam"),
        ("role", "INC-1", "responder", "rui"),
        ("role", "INC-1", "responder", "rui", "--unassign"),
        ("note", "INC-1", "provider returns 502"),
        ("action", "INC-1", "failed over to the backup provider"),
        ("assign", "INC-1", "rui", "call the provider"),
        ("update", "INC-1", "failover done, watching"),
        ("resolve", "INC-1", "--summary", "provider fixed"),
    ):
        result = tocsin.cli("incident", *args)
        assert result.exit_code == 0, (args, result.output)
    out = tocsin.cli("incident", "timeline", "INC-1").stdout
    for expected in (
        "declared P0 Payments failing",
        "status triggered -> acknowledged",
        "scribe: sam",
        "rui is no longer responder",
        "provider returns 502",
        "action: failed over to the backup provider",
        "assigned rui: call the provider",
        "management update: failover done, watching",
        "-> resolved: provider fixed",
    ):
        assert expected in out
    result = tocsin.cli("incident", "verify", "INC-1")
    assert result.exit_code == 0 and "timeline intact (10 events)" in result.stdout
    assert tocsin.json("incident", "close", "INC-1")["status"] == "closed"
    assert tocsin.json("incident", "reopen", "INC-1", "--reason", "it is back")["status"] == "investigating"


def test_verify_exits_1_when_the_chain_is_broken(tocsin: Tocsin) -> None:
    tocsin.cli("incident", "declare", "Outage", "-s", "P1")
    tocsin.cli("incident", "note", "INC-1", "original")

    async def tamper() -> None:
        db = Database(tocsin.database_url)
        try:
            async with db.transaction() as session:
                await session.execute(text("UPDATE timeline_events SET actor = 'mallory' WHERE seq = 2"))
        finally:
            await db.dispose()

    asyncio.run(tamper())
    result = tocsin.cli("incident", "verify", "INC-1")
    assert result.exit_code == 1 and "timeline BROKEN" in result.stdout
    result = tocsin.cli("incident", "verify", "INC-1", "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["intact"] is False


def test_api_errors_are_one_line(tocsin: Tocsin) -> None:
    result = tocsin.cli("incident", "show", "INC-99")
    assert result.exit_code == 1 and "INC-99" in one_error_line(result)
    result = tocsin.cli("incident", "declare", "Bad", "-s", "P1", "--component", "Not A Slug")
    assert result.exit_code == 1 and one_error_line(result).startswith("error: components.0: ")
    result = tocsin.cli("incident", "show", "../users")
    assert result.exit_code == 2 and "not an incident id" in one_error_line(result)
    result = tocsin.cli("incident", "list", token="tok_wrong")
    assert result.exit_code == 1 and "the token was refused" in one_error_line(result)
    result = tocsin.cli("incident", "list", token="")
    assert result.exit_code == 2 and "TOCSIN_TOKEN" in one_error_line(result)


def test_a_viewer_is_told_what_the_server_said(tocsin: Tocsin) -> None:
    with httpx.Client(base_url=tocsin.url, headers=bearer(ADMIN_TOKEN)) as http:
        assert http.post("/api/v1/users", json={"name": "vera", "role": "viewer"}).status_code == 201
        viewer = http.post("/api/v1/tokens", json={"user": "vera"}).json()["token"]
    result = tocsin.cli("me", token=viewer)
    assert result.exit_code == 0 and "vera, role viewer" in result.stdout
    result = tocsin.cli("incident", "declare", "Nope", "-s", "P3", token=viewer)
    assert result.exit_code == 1 and "responder" in one_error_line(result)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_unreachable_server_exits_3_with_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["incident", "list"], env={"TOCSIN_URL": url, "TOCSIN_TOKEN": "tok_x"})
    assert result.exit_code == 3
    line = one_error_line(result)
    assert line == f"error: cannot reach Tocsin at {url}: connection refused; is it running? (TOCSIN_URL)"
    result = runner.invoke(
        app, ["incident", "list", "--url", "localhost:8080"], env={"TOCSIN_TOKEN": "tok_x"}
    )
    assert result.exit_code == 2 and "not an http(s) URL" in one_error_line(result)


def test_help_documents_the_exit_codes() -> None:
    for args in (["incident", "--help"], ["incident", "command", "--help"]):
        result = runner.invoke(app, args, env={"COLUMNS": "200"})
        words = " ".join(result.stdout.replace("│", " ").split())
        assert result.exit_code == 0 and "2 usage error, 3 cannot reach Tocsin" in words
