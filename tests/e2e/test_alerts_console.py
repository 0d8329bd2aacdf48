"""An incident opened by Prometheus alerts, read in a real browser: each alert opens to show what its
sender attached (labels, annotations, links, details), and silences alerts like it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from e2e.harness import (
    SCREENSHOTS,
    browser_page,
    require_chromium,
    seed_policy_file,
    sign_in,
    user_with_token,
    uvicorn_server,
)
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
    with (
        uvicorn_server(tmp_path, {"TOCSIN_DATABASE_URL": database_url}) as url,
        sync_playwright() as p,
        browser_page(p, 1366, 900) as (page, problems),
    ):
        # The admin connects Prometheus on the console: the key, and what to paste, shown once.
        page.goto(f"{url}/login?next=/integrations")
        sign_in(page)
        expect(page).to_have_url(f"{url}/integrations")
        form = page.get_by_role("form", name="New integration")
        form.get_by_label("Name").fill("prod-prometheus")
        form.get_by_label("Kind").select_option("prometheus")
        form.get_by_label("Service").select_option("portal")
        form.get_by_role("button", name="Create and show the key").click()
        key = page.get_by_label("Key", exact=True).inner_text()
        paste = page.get_by_label("Configuration", exact=True).inner_text()
        assert len(key) == 32 and f"credentials: {key}" in paste and "api_version: v2" in paste
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.locator(".key-shown").screenshot(path=str(SCREENSHOTS / "console-integration-key.png"))
        expect(page.locator('tr[data-integration="prod-prometheus"]')).to_contain_text("Enabled")

        sent = httpx.post(f"{url}/api/v2/alerts", json=[firing(i) for i in range(3)], headers=bearer(key))
        assert sent.status_code == 200, sent.text
        page.goto(f"{url}/incidents/INC-1")
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
        alerts.screenshot(path=str(SCREENSHOTS / "console-alerts.png"))

        # Too noisy: silence alerts like this one, on every instance, for 4 hours.
        first.get_by_role("link", name="Silence alerts like this").click()
        expect(page).to_have_url(
            f"{url}/silences?m=alertname%3DApiHighErrorRate&m=component%3Dapi&m=instance%3Dapi-2%3A9100&m=job%3Dapi&m=service%3Dportal&m=severity%3Dcritical"
        )
        form = page.get_by_role("form", name="New silence")
        matchers = form.get_by_label("Matchers, one a line")
        expect(matchers).to_have_value(
            "alertname=ApiHighErrorRate\ncomponent=api\ninstance=api-2:9100\njob=api\nservice=portal\nseverity=critical"
        )
        matchers.fill("alertname=ApiHighErrorRate\njob=api")
        form.get_by_label("For").fill("4h")
        form.get_by_label("Why").fill("known: the v2.3 rollout, rolling back")
        form.get_by_role("button", name="Silence").click()
        expect(page).to_have_url(f"{url}/silences")
        row = page.locator("tr[data-silence]")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("alertname=ApiHighErrorRate and job=api")
        expect(row).to_contain_text("known: the v2.3 rollout, rolling back")
        page.screenshot(path=str(SCREENSHOTS / "console-silences.png"))
        more = httpx.post(f"{url}/api/v2/alerts", json=[firing(9)], headers=bearer(key))
        assert more.status_code == 200, more.text
        listed = httpx.get(f"{url}/api/v1/alerts", headers=bearer(token)).json()
        assert [a["muted_by"] is not None for a in listed if a["labels"]["instance"] == "api-9:9100"] == [
            True
        ]
        page.reload()
        expect(row.get_by_role("link", name="mutes 1 open alert")).to_be_visible()

        # Every integration's alerts in one list, newest first, each leading to its incident.
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Alerts").click()
        expect(page).to_have_url(f"{url}/alerts")
        listed = page.locator("li[data-alert]")
        expect(listed).to_have_count(4)
        expect(listed.first).to_contain_text("api-9 answers 5xx")
        expect(page.get_by_text("of these, 1 muted (silenced or inhibited)")).to_be_visible()
        page.goto(f"{url}/silences")
        page.locator("tr[data-silence]").get_by_role("button", name="End silence").click()
        expect(page.get_by_text("Nothing is silenced.")).to_be_visible()
        page.goto(f"{url}/alerts")
        listed.nth(1).get_by_role("link", name="INC-1").click()
        expect(page).to_have_url(f"{url}/incidents/INC-1")

        # In a storm: what it is made of, counted by a label, each count a filter; then silence those.
        page.goto(f"{url}/alerts")
        counts = page.get_by_role("list", name="Open alerts by alertname")
        expect(counts.get_by_role("link")).to_have_count(1)
        expect(counts).to_contain_text("ApiHighErrorRate 4")
        page.get_by_role("navigation", name="Count by label").get_by_role("link", name="instance").click()
        by_instance = page.get_by_role("list", name="Open alerts by instance")
        expect(by_instance.get_by_role("link")).to_have_count(4)
        page.get_by_label("Filter by labels").fill('job="api", instance=~"api-[12].*"')
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("li[data-alert]")).to_have_count(2)
        expect(by_instance.get_by_role("link")).to_have_count(2)  # the counts follow the filter
        page.screenshot(path=str(SCREENSHOTS / "console-alerts-filter.png"))
        by_instance.get_by_role("link").first.click()
        expect(page.locator("li[data-alert]")).to_have_count(1)
        expect(page.get_by_label("Filter by labels")).to_have_value(
            'job="api", instance=~"api-[12].*", instance="api-1:9100"'
        )
        page.get_by_role("link", name="Silence alerts matching this filter").click()
        expect(page.get_by_label("Matchers, one a line")).to_have_value(
            "job=api\ninstance=~api-[12].*\ninstance=api-1:9100"
        )

        # A stale alert, resolved by hand from inside it; the page says so and it is gone.
        page.go_back()
        stale = page.locator("li[data-alert] details.alert-detail")
        expect(stale).to_have_count(1)
        stale.locator("summary").click()
        stale.get_by_role("button", name="Resolve this alert").click()
        expect(page.get_by_role("status")).to_contain_text("Resolved 1 alert by hand.")
        expect(page.get_by_text("No open alerts match this filter.")).to_be_visible()
        assert problems == []


INHIBIT = """  inhibit_rules:
    - source_matchers: ['alertname="NodeDown"']
      target_matchers: ['alertname=~"Service.*"']
      equal: [instance]
"""


def test_an_inhibited_alert_says_what_mutes_it(tmp_path: Path) -> None:
    """A node down mutes its services' alerts: the incident page names the alert that inhibits each,
    one click away, and the Silences page lists the policy's rules."""
    from playwright.sync_api import expect, sync_playwright

    require_chromium()
    database_url = migrated_sqlite(tmp_path / "template.db", tmp_path / "tocsin.db")
    token = asyncio.run(user_with_token(database_url, Role.admin))
    policy = seed_policy_file(tmp_path / "policy.yaml", "")
    policy.write_text(policy.read_text().replace("  inhibit_rules: []\n", INHIBIT), encoding="utf-8")
    env = {"TOCSIN_DATABASE_URL": database_url, "TOCSIN_POLICY": str(policy)}
    with (
        uvicorn_server(tmp_path, env) as url,
        sync_playwright() as p,
        browser_page(p, 1366, 900) as (page, problems),
    ):
        made = httpx.post(
            f"{url}/api/v1/integrations", json={"name": "prom", "kind": "prometheus"}, headers=bearer(token)
        )
        key = made.json()["key"]
        node = {"labels": {"alertname": "NodeDown", "instance": "db-1:9100", "severity": "critical"}}
        slow = {"labels": {"alertname": "ServiceSlow", "instance": "db-1:9100", "severity": "warning"}}
        for alert in (node, slow):
            sent = httpx.post(f"{url}/api/v2/alerts", json=[alert], headers=bearer(key))
            assert sent.status_code == 200, sent.text

        page.goto(f"{url}/login?next=/incidents/INC-1")
        sign_in(page)
        alerts = page.locator("#alerts")
        inhibited = alerts.locator("details.alert-detail", has_text="ServiceSlow")
        expect(inhibited).to_contain_text("(inhibited by #1)")
        expect(inhibited.get_by_role("link", name="Silence alerts like this")).to_have_count(0)
        inhibited.get_by_role("link", name="(inhibited by #1)").click()
        expect(page).to_have_url(f"{url}/alerts?status=all&before=2")
        expect(page.locator("li[data-alert]").first).to_contain_text("NodeDown")

        page.get_by_role("navigation", name="Main").get_by_role("link", name="Silences").click()
        rules = page.get_by_role("table", name="Inhibit rules")
        expect(rules).to_contain_text('alertname="NodeDown"')
        expect(rules).to_contain_text('alertname=~"Service.*"')
        expect(page.get_by_text("They mute 1 open alert now")).to_be_visible()
        page.locator("section", has=rules).screenshot(path=str(SCREENSHOTS / "console-inhibit-rules.png"))
        assert problems == []
