from datetime import UTC, date, datetime, timedelta
from importlib import resources
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from tocsin.policy import (
    Deadline,
    NextBusinessDay,
    Policy,
    SeverityPolicy,
    UnknownSeverity,
    default_policy,
    load_policy_text,
)

NEW_YORK = ZoneInfo("America/New_York")
MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)

# DESIGN.md, "Default policy = the seed": response, resolution, escalate after, paged, management updates.
DESIGN_TABLE: dict[str, tuple[Deadline, Deadline, timedelta | None, list[str], timedelta | None]] = {
    "P0": (15 * MINUTE, 1 * HOUR, 30 * MINUTE, ["full_team", "management"], 30 * MINUTE),
    "P1": (30 * MINUTE, 4 * HOUR, 2 * HOUR, ["full_team", "management"], 30 * MINUTE),
    "P2": (2 * HOUR, 24 * HOUR, 8 * HOUR, ["primary", "backup"], 1 * HOUR),
    "P3": (NextBusinessDay(), timedelta(weeks=1), None, ["primary"], None),
}


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NEW_YORK).astimezone(UTC)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return default_policy()


def test_default_policy_is_cached(policy: Policy) -> None:
    assert default_policy() is policy


@pytest.mark.parametrize("key", DESIGN_TABLE)
def test_severities_match_the_design_table(policy: Policy, key: str) -> None:
    severity = policy.severity(key)
    row = (
        severity.response,
        severity.resolution,
        severity.escalate_after,
        severity.page,
        severity.management_updates,
    )
    assert row == DESIGN_TABLE[key]


def test_severity_descriptions(policy: Policy) -> None:
    assert [(s.key, s.rank, s.name) for s in policy.severities.values()] == [
        ("P0", 0, "Critical"),
        ("P1", 1, "High"),
        ("P2", 2, "Medium"),
        ("P3", 3, "Low"),
    ]
    assert policy.severity("P0").definition == "Complete service outage affecting all users"
    assert policy.severity("P0").examples == [
        "Application completely down",
        "database unavailable",
        "security breach",
    ]
    assert policy.severity("P1").definition == "Major functionality impacted, affecting most users"
    assert policy.severity("P2").examples[0] == "Slow response times"
    assert policy.severity("P3").definition == "Minor issues with minimal user impact"
    assert policy.severity_keys == ["P0", "P1", "P2", "P3"]


def test_unknown_severity_names_the_allowed_keys(policy: Policy) -> None:
    with pytest.raises(UnknownSeverity, match='unknown severity "P7": expected one of P0, P1, P2, P3'):
        policy.severity("P7")
    assert issubclass(UnknownSeverity, ValueError)


def test_seed_numbers_and_names(policy: Policy) -> None:
    assert policy.organization == "Haus of Basquiat Portal"
    assert policy.tz == NEW_YORK
    assert (policy.status_page.update_within, policy.status_page.customer_facing_only) == (30 * MINUTE, True)
    assert policy.communication.status_meetings_every == 2 * HOUR
    assert policy.communication.stability_watch == 15 * MINUTE
    assert policy.channels.alerts == "#haus-of-basquiat-alerts"
    assert policy.channels.incident_prefix == "incident"
    assert policy.channels.alerts_email == "alerts@hausofbasquiat.com"
    assert policy.postmortem.schedule_within == 48 * HOUR
    assert policy.postmortem.complete_within == timedelta(weeks=1)
    assert policy.checklists.immediate_within == 24 * HOUR
    assert policy.checklists.follow_up_within == timedelta(weeks=1)
    windows = {phase.name: (phase.starts, phase.ends) for phase in policy.workflow}
    assert windows["initial-response"] == (timedelta(0), 15 * MINUTE)
    assert windows["investigation"] == (15 * MINUTE, 1 * HOUR)
    assert list(windows) == [
        "detection",
        "initial-response",
        "investigation",
        "mitigation",
        "communication",
        "post-incident",
    ]


def test_escalation_chains(policy: Policy) -> None:
    chains = {name: [step.role for step in chain.steps] for name, chain in policy.escalation_chains.items()}
    assert chains == {
        "technical": ["Senior Engineer", "Engineering Manager", "CTO"],
        "business": ["Incident Commander", "Product Manager", "CEO"],
    }
    assert all(chain.repeat == 0 for chain in policy.escalation_chains.values())
    assert len(policy.escalation_triggers) == 4


def test_business_hours(policy: Policy) -> None:
    calendar = policy.calendar()
    assert calendar is policy.calendar()
    assert (calendar.opens.hour, calendar.closes.hour) == (9, 17)
    assert calendar.days == frozenset({0, 1, 2, 3, 4})
    assert policy.business_hours.days == ["mon", "tue", "wed", "thu", "fri"]


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    return _nth_weekday(
        year, month, weekday, 5 if _nth_weekday(year, month, weekday, 5).month == month else 4
    )


def _observed(day: date) -> date:
    return day + {5: timedelta(days=-1), 6: timedelta(days=1)}.get(day.weekday(), timedelta(0))


def test_holidays_are_the_us_federal_holidays_of_2026_and_2027(policy: Policy) -> None:
    monday, thursday = 0, 3
    expected = set()
    for year in (2026, 2027):
        expected |= {
            _observed(date(year, 1, 1)),
            _nth_weekday(year, 1, monday, 3),
            _nth_weekday(year, 2, monday, 3),
            _last_weekday(year, 5, monday),
            _observed(date(year, 6, 19)),
            _observed(date(year, 7, 4)),
            _nth_weekday(year, 9, monday, 1),
            _nth_weekday(year, 10, monday, 2),
            _observed(date(year, 11, 11)),
            _nth_weekday(year, 11, thursday, 4),
            _observed(date(year, 12, 25)),
        }
    expected.add(_observed(date(2028, 1, 1)))  # observed on Friday 2027-12-31
    assert set(policy.holidays) == expected
    assert len(policy.holidays) == len(expected)


def test_services_and_components(policy: Policy) -> None:
    assert [service.name for service in policy.services] == ["portal"]
    assert policy.component_names == {
        "application",
        "api",
        "authentication",
        "database",
        "email",
        "cdn",
        "third-party-apis",
    }


def test_checklists_are_the_seed_items(policy: Policy) -> None:
    checklists = policy.checklists
    assert len(checklists.during_incident) == 9
    assert checklists.during_incident[0] == "Incident acknowledged in monitoring system"
    assert checklists.during_incident[-1] == "All-clear communicated"
    assert len(checklists.post_incident) == 7
    assert checklists.post_incident[0] == "Post-mortem scheduled within 48 hours"
    assert checklists.immediate == [
        "All-clear communication to stakeholders",
        "Incident summary in incident channel",
        "Timeline documentation with key events",
        "Monitoring alert review - did alerts fire correctly?",
    ]
    assert checklists.follow_up == [
        "Post-mortem document created",
        "Root cause analysis completed",
        "Action items identified and assigned",
        "Process improvements documented",
        "Runbook updates based on lessons learned",
    ]


def test_scenarios(policy: Policy) -> None:
    assert [(s.name, len(s.symptoms), len(s.investigation), len(s.causes)) for s in policy.scenarios] == [
        ("complete-outage", 3, 4, 4),
        ("authentication-failure", 3, 3, 4),
        ("high-error-rate", 3, 4, 4),
        ("database-performance", 3, 4, 4),
    ]
    outage = policy.scenarios[0]
    assert outage.title == "Complete Application Outage"
    assert outage.investigation[1].command == "railway logs --service production --tail 50"
    assert (outage.causes[0].cause, outage.causes[0].solution) == (
        "Out of memory",
        "Scale up or optimize memory usage",
    )
    slow_queries = policy.scenarios[3].investigation[2].command
    assert slow_queries is not None
    assert "LIMIT 10;" in slow_queries
    assert slow_queries.startswith('psql $DATABASE_URL -c "\n')


def test_mitigations(policy: Policy) -> None:
    steps = {m.name: [(s.title, s.command) for s in m.steps] for m in policy.mitigations}
    assert list(steps) == [
        "gather-information",
        "traffic-routing",
        "scale-resources",
        "rollback",
        "database-recovery",
        "verify-resolution",
    ]
    assert ("Enable maintenance mode", "railway environment set MAINTENANCE_MODE=true") in steps[
        "traffic-routing"
    ]
    assert ("Scale up application", "railway scale --service production --replicas 3") in steps[
        "scale-resources"
    ]
    assert steps["gather-information"][0] == (
        "Check application health",
        "curl -f https://hausofbasquiat.com/api/health",
    )
    assert steps["verify-resolution"][-1] == (
        "Monitor for stability (15+ minutes)",
        "watch -n 60 'curl -s https://hausofbasquiat.com/api/monitoring?type=metrics'",
    )


def test_status_templates_render_the_seed_text(policy: Policy) -> None:
    rendered = policy.templates.render(
        "status_initial", description="slow logins", posted_at="2026-11-27 17:05 EST"
    )
    assert rendered == (
        "🔴 We're investigating reports of slow logins.\n"
        "We're working to resolve this as quickly as possible.\n"
        "Updates will be posted here.\n"
        "Posted: 2026-11-27 17:05 EST"
    )
    assert policy.templates.render("status_resolution", posted_at="now") == (
        "✅ This incident has been resolved.\n"
        "All systems are operating normally.\n"
        "We apologize for any inconvenience.\n"
        "Posted: now"
    )


def test_postmortem_template(policy: Policy) -> None:
    rendered = policy.templates.render(
        "postmortem",
        title="Database down",
        date="2026-11-27",
        duration="1 hour 5 minutes",
        severity="P0",
        incident_commander="Pat",
    )
    assert rendered.startswith(
        "# Post-Mortem: Database down\n\n**Date:** 2026-11-27\n**Duration:** 1 hour 5 minutes\n"
        "**Severity:** P0\n**Incident Commander:** Pat\n\n## Summary\n"
    )
    assert "- [ ] Action 1 (Owner: Name, Due: Date)" in rendered
    assert rendered.endswith("## Lessons Learned\nKey takeaways and process improvements.\n")


def test_rendering_without_a_variable_fails(policy: Policy) -> None:
    with pytest.raises(Exception, match="posted_at"):
        policy.templates.render("status_resolution")


@pytest.mark.parametrize(
    ("key", "start", "due"),
    [
        ("P0", local(2026, 11, 24, 10), (local(2026, 11, 24, 10, 15), local(2026, 11, 24, 11))),
        ("P1", local(2026, 11, 24, 10), (local(2026, 11, 24, 10, 30), local(2026, 11, 24, 14))),
        ("P2", local(2026, 11, 24, 10), (local(2026, 11, 24, 12), local(2026, 11, 25, 10))),
        # Friday 17:00 -> Monday 17:00.
        ("P3", local(2026, 11, 27, 17), (local(2026, 11, 30, 17), local(2026, 12, 4, 17))),
        # Wednesday before Thanksgiving -> Friday: the holiday is skipped.
        ("P3", local(2026, 11, 25, 10), (local(2026, 11, 27, 17), local(2026, 12, 2, 10))),
        # Thursday before the Independence Day holiday (Friday 2026-07-03) -> Monday.
        ("P3", local(2026, 7, 2, 16), (local(2026, 7, 6, 17), local(2026, 7, 9, 16))),
    ],
)
def test_deadlines(policy: Policy, key: str, start: datetime, due: tuple[datetime, datetime]) -> None:
    severity = policy.severity(key)
    assert (policy.deadline(start, severity.response), policy.deadline(start, severity.resolution)) == due
    assert policy.deadline(start, severity.response).tzinfo is UTC


def test_deadline_rejects_naive_instants(policy: Policy) -> None:
    with pytest.raises(ValueError, match="naive"):
        policy.deadline(datetime(2026, 11, 27, 17), 15 * MINUTE)


@pytest.mark.parametrize("text", ["next business day", "Next Business Day", "NEXT  business day"])
def test_next_business_day_spellings(text: str) -> None:
    severity = SeverityPolicy.model_validate(
        {
            "key": "P3",
            "name": "Low",
            "definition": "d",
            "response": text,
            "resolution": "1w",
            "page": ["primary"],
        }
    )
    assert severity.response == NextBusinessDay()
    assert str(severity.response) == "next business day"


def test_bad_duration_message() -> None:
    with pytest.raises(ValidationError, match='"3O m" is not a duration'):
        SeverityPolicy.model_validate(
            {
                "key": "P1",
                "name": "H",
                "definition": "d",
                "response": "3O m",
                "resolution": "1h",
                "page": ["primary"],
            }
        )


def test_models_are_frozen(policy: Policy) -> None:
    with pytest.raises(ValidationError):
        policy.organization = "Other"  # type: ignore[misc]


def test_json_round_trip(policy: Policy) -> None:
    dumped = policy.model_dump(mode="json")
    assert dumped["severities"]["P3"]["response"] == "next business day"
    assert dumped["severities"]["P0"]["resolution"] == "1h"
    assert dumped["business_hours"] == {
        "opens": "09:00",
        "closes": "17:00",
        "days": ["mon", "tue", "wed", "thu", "fri"],
    }
    assert Policy.model_validate(dumped) == policy
    assert load_policy_text(yaml.safe_dump(dumped, allow_unicode=True), "dumped.yaml") == policy


def test_default_file_writes_every_section() -> None:
    # Omitted sections come from the default policy, so the default itself must omit none.
    text = resources.files("tocsin.policy").joinpath("default.yaml").read_text(encoding="utf-8")
    assert set(yaml.safe_load(text)) == set(Policy.model_fields)


def test_a_minimal_policy_takes_the_seed_process(policy: Policy) -> None:
    minimal = load_policy_text(
        """
organization: Acme
timezone: Europe/Berlin
channels: {alerts: "#acme-alerts"}
severities:
  P1: {name: Bad, definition: Broken, response: 5m, resolution: 1h, page: [primary]}
""",
        "tocsin.yaml",
    )
    assert minimal.checklists == policy.checklists
    assert minimal.templates == policy.templates
    assert minimal.escalation_chains == policy.escalation_chains
    assert (minimal.holidays, minimal.services, minimal.scenarios) == ([], [], [])
    assert minimal.severity_keys == ["P1"]
    assert minimal.calendar().tz == ZoneInfo("Europe/Berlin")


def test_negative_durations_are_refused() -> None:
    with pytest.raises(ValidationError, match="negative"):
        SeverityPolicy(
            key="P1", name="H", definition="d", response=-MINUTE, resolution=HOUR, page=["primary"]
        )
