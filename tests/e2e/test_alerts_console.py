"""An incident opened by Prometheus alerts, read in a real browser: each alert opens to show what its
sender attached (labels, annotations, links, details)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from e2e.harness import SCREENSHOTS, browser_page, require_chromium, sign_in, user_with_token, uvicorn_server
from tocsin.auth.roles import Role
from tocsin.testing import bearer, migrated_sqlite

pytestmark = pytest.mark.e2e


def firing(i: int) -> dict[str, object]:
    return {
        "labels": {
            "alertname": "ApiHighErrorRate",
            "severity": "critical",
            "job": "api",
            "instance": f"api-{i}:9100",
            "component": "api",
        },
        "annotations": {
            "summary": f"api-{i} answers 5xx to 12% of requests",
            "description": "the 5xx ratio over 5 minutes is above 5%",
            "runbook_url": "https://wiki.hausofbasquiat.com/runbooks/api-5xx",
        },
        "generatorURL": "http://prometheus:9090/graph?g0.expr=rate(http_errors_total%5B5m%5D)",
    }


def test_an_alert_opens_to_show_what_its_sender_attached(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    require_chromium()
    database_url = migrated_sqlite(tmp_path / "template.db", tmp_path / "tocsin.db")
    token = asyncio.run(user_with_token(database_url, Role.admin))
    with uvicorn_server(tmp_path, {"TOCSIN_DATABASE_URL": database_url}) as url:
        created = httpx.post(
            f"{url}/api/v1/integrations",
            json={"name": "prod-prometheus", "kind": "prometheus", "service": "portal"},
            headers=bearer(token),
        )
        key = created.json()["key"]
        sent = httpx.post(f"{url}/api/v2/alerts", json=[firing(i) for i in range(3)], headers=bearer(key))
        assert sent.status_code == 200, sent.text
        with sync_playwright() as p, browser_page(p, 1366, 900) as (page, problems):
            page.goto(f"{url}/login?next=/incidents/INC-1")
            sign_in(page)
            expect(page).to_have_url(f"{url}/incidents/INC-1")
            alerts = page.locator("#alerts")
            expect(alerts).to_contain_text("3 firing")
            first = alerts.locator("details.alert-detail").first
            expect(first.get_by_text("instance=api-2:9100")).to_be_hidden()  # closed until asked
            first.locator("summary").click()
            expect(first.get_by_text("instance=api-2:9100")).to_be_visible()
            runbook = first.get_by_role("link", name="https://wiki.hausofbasquiat.com/runbooks/api-5xx")
            expect(runbook).to_have_attribute("rel", "noopener noreferrer nofollow")
            expect(first.get_by_role("link", name="source")).to_have_attribute(
                "href", "http://prometheus:9090/graph?g0.expr=rate(http_errors_total%5B5m%5D)"
            )
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            alerts.screenshot(path=str(SCREENSHOTS / "console-alerts.png"))
            assert problems == []
