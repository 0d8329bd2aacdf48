"""`tocsin status update|maintenance` against a real server, and `tocsin status export` of its database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from tocsin.cli.main import app
from tocsin.testing import bearer, served

ADMIN = "tok_status-cli-admin"
runner = CliRunner()


@pytest.fixture
def server(database_url: str) -> Iterator[str]:
    with served(database_url, ADMIN) as url:
        yield url


def cli(url: str, *args: str, **env: str) -> Result:
    return runner.invoke(
        app, list(args), env={"TOCSIN_URL": url, "TOCSIN_TOKEN": ADMIN, "COLUMNS": "200", **env}
    )


def declare(url: str, **body: Any) -> str:
    data = {"title": "Search is slow", "severity": "P1", "components": ["api"], **body}
    r = httpx.post(f"{url}/api/v1/incidents", json=data, headers=bearer(ADMIN), timeout=10)
    assert r.status_code == 201, r.text
    ref: str = r.json()["id"]
    return ref


def test_update_draft_edit_and_post(server: str) -> None:
    ref = declare(server)
    draft = cli(server, "status", "update", ref, "--draft")
    assert draft.exit_code == 0, draft.output
    assert draft.stdout.startswith("🔴 We're investigating reports of search is slow.")
    posted = cli(
        server, "status", "update", ref, "--edit", EDITOR="sed -i -e 's/as quickly as possible/right now/'"
    )
    assert posted.exit_code == 0, posted.output
    assert f"of {ref} (investigating); components: api partial_outage" in posted.stdout
    updates = httpx.get(f"{server}/api/v1/incidents/{ref}/status-updates", headers=bearer(ADMIN)).json()
    assert "We're working to resolve this right now." in updates[0]["body"]
    done = cli(server, "status", "update", ref, "--status", "resolved", "--json")
    assert (
        done.exit_code == 0
        and json.loads(done.stdout)["affected_components"][0]["new_status"] == "operational"
    )


def test_update_errors_are_one_line(server: str) -> None:
    ref = declare(server)
    bad = cli(server, "status", "update", ref, "--component", "api=on_fire")
    assert bad.exit_code == 2 and "expected NAME=STATUS" in bad.stderr
    internal = declare(server, severity="P3", customer_facing=False)
    refused = cli(server, "status", "update", internal, "-m", "hello")
    assert refused.exit_code == 1 and "internal" in refused.stderr and len(refused.stderr.splitlines()) == 1


def test_maintenance_on_and_off(server: str) -> None:
    on = cli(server, "status", "maintenance", "on", "--component", "database", "--title", "Failover")
    assert on.exit_code == 0, on.output
    assert "in_progress: database" in on.stdout
    components = httpx.get(f"{server}/status/api/v2/components.json").json()["components"]
    assert {c["id"]: c["status"] for c in components}["database"] == "under_maintenance"
    off = cli(server, "status", "maintenance", "off", "--json")
    assert off.exit_code == 0 and json.loads(off.stdout)[0]["status"] == "completed"
    again = cli(server, "status", "maintenance", "off")
    assert again.exit_code == 1 and "not on" in again.stderr


def test_export_writes_the_whole_page(server: str, database_url: str, tmp_path: Path) -> None:
    ref = declare(server, title="<b>Checkout</b> down", severity="P0", components=["api", "database"])
    assert cli(server, "status", "update", ref).exit_code == 0
    out = tmp_path / "site"
    env = {"TOCSIN_DATABASE_URL": database_url}
    result = runner.invoke(
        app, ["status", "export", str(out), "--live-url", "https://tocsin.example.com"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "exported" in result.stderr
    for name in (
        "index.html", "history/index.html", f"incidents/{ref}/index.html", "feed.atom", "status.css",
        "api/v2/summary.json", "api/v2/status.json", "api/v2/components.json", "api/v2/incidents.json",
        "api/v2/incidents/unresolved.json", "api/v2/scheduled-maintenances.json",
        "api/v2/scheduled-maintenances/upcoming.json", "api/v2/scheduled-maintenances/active.json",
    ):  # fmt: skip
        assert (out / name).is_file(), name
    exported = json.loads((out / "api/v2/summary.json").read_text())
    live = httpx.get(f"{server}/status/api/v2/summary.json").json()
    for doc in (exported, live):
        doc["page"].pop("url")
        for item in doc["incidents"]:
            item.pop("shortlink")
    assert exported == live
    index = (out / "index.html").read_text()
    assert 'href="/status.css"' in index and f'href="/incidents/{ref}/"' in index
    assert 'action="https://tocsin.example.com/status/subscribe"' in index
    assert "&lt;b&gt;Checkout&lt;/b&gt;" in index and "<b>Checkout" not in index
    bad = runner.invoke(app, ["status", "export", str(out), "--base-path", "status"], env=env)
    assert bad.exit_code == 2
