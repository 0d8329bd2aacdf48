"""The on-call sections of the policy: people, teams, rotations, paging, escalation-step targets."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tocsin.cli.main import app
from tocsin.oncall.schedule import gap_warnings
from tocsin.policy import PolicyError, default_policy, load_policy_text
from tocsin.policy.models import Policy
from tocsin.testing import seed_policy_with

PEOPLE = """
people:
  - name: alice
    full_name: Alice Ng
    email: alice@example.com
    slack: U0123ABCD
    titles: [Senior Engineer]
    notify:
      - {via: slack, after: 0m}
      - {via: email, after: 5m}
  - name: bob
    email: bob@example.com
    webhook: https://sms.example/hook
    titles: [Engineering Manager]
"""

TEAMS = """
teams:
  - name: portal
    title: Portal on-call
    services: [portal]
    rotations:
      - name: portal-primary
        layer: primary
        members: [alice, bob]
        handoff: weekly
        start: "2026-01-05 09:00"
      - name: portal-office
        layer: backup
        members: [bob]
        handoff: daily
        start: "2026-01-05 09:00"
        active: {from: "09:00", to: "17:00", days: [mon, tue, wed, thu, fri]}
"""


def replacing(extra: str) -> Policy:
    """The seed with whole top-level sections replaced (seed_policy_with only replaces empty ones)."""
    seed = resources.files("tocsin.policy").joinpath("default.yaml").read_text(encoding="utf-8")
    for key in re.findall(r"^([a-z_]+):", extra, flags=re.M):
        seed = re.sub(rf"^{key}:.*?\n(?=[a-z#])", "", seed, flags=re.M | re.S)
    return load_policy_text(seed + extra, "test.yaml")


def problems(load: object, extra: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load(extra)  # type: ignore[operator]
    return [str(issue) for issue in caught.value.issues]


def test_the_seed_has_nobody_and_explicit_step_delays() -> None:
    policy = default_policy()
    assert policy.people == [] and policy.teams == []
    for chain in policy.escalation_chains.values():
        assert chain.repeat == 0
        assert [step.after for step in chain.steps] == [
            timedelta(0),
            timedelta(minutes=15),
            timedelta(minutes=15),
        ]
    assert policy.paging.unacknowledged == "technical"
    assert policy.paging.unresolved == ["technical", "business"]
    assert [r.via for r in policy.paging.default_notify] == ["slack", "email", "webhook"]
    assert policy.paging.throttle.messages == 20 and policy.paging.throttle.per == timedelta(minutes=10)
    assert gap_warnings(policy, datetime(2026, 3, 1, tzinfo=UTC)) == []


def test_people_and_teams_load() -> None:
    policy = seed_policy_with(PEOPLE + TEAMS)
    alice, bob = policy.people
    assert alice.display_name == "Alice Ng" and bob.display_name == "bob"
    assert [r.via for r in bob.rules(policy.paging.default_notify)] == ["email", "webhook"]
    team = policy.teams[0]
    primary, office = team.rotations
    assert primary.handoff == timedelta(days=7) and office.handoff == timedelta(days=1)
    assert primary.start == datetime(2026, 1, 5, 9, 0)
    assert office.active is not None and office.active.length == timedelta(hours=8)
    assert team.layer("backup") == [office]


def test_handoff_as_a_duration_and_wrapping_hours() -> None:
    policy = seed_policy_with(
        PEOPLE
        + """
teams:
  - name: night
    rotations:
      - name: night-watch
        members: [alice]
        handoff: 12h
        start: 2026-01-05
        active: {from: "20:00", to: "08:00"}
"""
    )
    rotation = policy.teams[0].rotations[0]
    assert rotation.handoff == timedelta(hours=12) and rotation.start == datetime(2026, 1, 5)
    assert rotation.active is not None and rotation.active.length == timedelta(hours=12)
    assert len(rotation.active.days) == 7


def test_escalation_steps_take_one_target() -> None:
    policy = replacing(
        PEOPLE
        + TEAMS
        + """
escalation_chains:
  technical:
    steps:
      - {role: Senior Engineer, person: alice}
      - {role: On call, rotation: portal-primary, after: 15m}
      - {role: Team, team: portal, after: 15m}
      - {role: Leads, channel: "#portal-leads", after: 15m}
      - {role: CTO, after: 15m}
  business:
    steps: [{role: CEO}]
"""
    )
    steps = policy.escalation_chains["technical"].steps
    assert (steps[0].person, steps[1].rotation, steps[2].team, steps[3].channel) == (
        "alice",
        "portal-primary",
        "portal",
        "#portal-leads",
    )
    assert steps[4].person is None and steps[4].role == "CTO"


def test_bad_references_name_file_line_and_field() -> None:
    found = problems(
        replacing,
        PEOPLE
        + """
  - name: bob
teams:
  - name: portal
    services: [portal, billing]
    rotations:
      - name: portal-primary
        members: [alice, zed]
        start: "2026-01-05 09:00"
  - name: portal
    rotations:
      - name: portal-primary
        members: [alice]
        start: "2026-01-05 09:00"
escalation_chains:
  technical:
    steps:
      - {role: A, person: carol}
      - {role: B, rotation: nightly}
      - {role: C, team: ops}
paging:
  unacknowledged: techy
  unresolved: [technical, business]
""",
    )
    text = "\n".join(found)
    assert re.search(r'test\.yaml:\d+ people\.2\.name: person "bob" is defined twice', text)
    assert re.search(r'test\.yaml:\d+ teams\.1\.name: team "portal" is defined twice', text)
    assert re.search(r'teams\.1\.rotations\.0\.name: rotation "portal-primary" is defined twice', text)
    assert re.search(r'teams\.0\.services\.1: unknown service "billing"', text)
    assert re.search(r'teams\.0\.rotations\.0\.members\.1: unknown person "zed"', text)
    assert re.search(r'escalation_chains\.technical\.steps\.0\.person: unknown person "carol"', text)
    assert re.search(r'escalation_chains\.technical\.steps\.1\.rotation: unknown rotation "nightly"', text)
    assert re.search(r'escalation_chains\.technical\.steps\.2\.team: unknown team "ops"', text)
    assert re.search(r'paging\.unacknowledged: unknown escalation chain "techy"', text)
    assert re.search(r'paging\.unresolved\.1: unknown escalation chain "business"', text)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "people:\n  - name: carol\n    notify: [{via: slack}]\n",
            r"people\.0\.notify\.0\.via: carol has no slack contact",
        ),
        (
            "people:\n  - {name: carol}\nteams:\n  - name: t\n    rotations:\n      - {name: r, members: [], start: 2026-01-05}\n",
            r"teams\.0\.rotations\.0\.members: a rotation needs at least one member",
        ),
        (
            "people:\n  - {name: carol}\nteams:\n  - name: t\n    rotations:\n      - {name: r, members: [carol], start: 2026-01-05, handoff: 30m}\n",
            r"teams\.0\.rotations\.0\.handoff: 30m: hand off daily, weekly or every 1h or more",
        ),
        (
            "people:\n  - {name: carol}\nteams:\n  - name: t\n    rotations:\n      - {name: r, members: [carol], start: next monday}\n",
            r'teams\.0\.rotations\.0\.start: "next monday" is not a local date and time',
        ),
        (
            "people:\n  - {name: carol}\nteams:\n  - name: t\n    rotations:\n      - {name: r, members: [carol], start: 2026-01-05, layer: tertiary}\n",
            r"teams\.0\.rotations\.0\.layer:",
        ),
        ("people:\n  - {name: Carol}\n", r"people\.0\.name: \"Carol\" is not a name"),
        ("people:\n  - {name: carol, slack: '#general'}\n", r"people\.0\.slack: .* is not a Slack member id"),
        (
            "people:\n  - {name: carol, webhook: 'ftp://x'}\n",
            r"people\.0\.webhook: .* is not an http\(s\) URL",
        ),
        (
            "escalation_chains:\n  technical:\n    steps: [{role: A, person: a, channel: '#x'}]\n",
            r"escalation_chains\.technical\.steps\.0: a step has at most one target",
        ),
    ],
)
def test_field_errors(extra: str, expected: str) -> None:
    found = problems(replacing, extra)
    assert any(re.search(rf"test\.yaml:\d+ {expected}", f) for f in found), found


def test_paging_none_means_no_chain() -> None:
    policy = replacing("paging:\n  unacknowledged: none\n  unresolved: []\n")
    assert policy.paging.unacknowledged is None and policy.paging.unresolved == []


def test_policy_check_reports_gaps_as_warnings(tmp_path: Path) -> None:
    seed = resources.files("tocsin.policy").joinpath("default.yaml").read_text(encoding="utf-8")
    text = (
        re.sub(r"^(people|teams): \[\]\n", "", seed, flags=re.M)
        + PEOPLE
        + TEAMS.replace("layer: backup", "layer: primary").replace(
            'members: [alice, bob]\n        handoff: weekly\n        start: "2026-01-05 09:00"',
            'members: [alice, bob]\n        handoff: weekly\n        start: "2099-01-05 09:00"',
        )
    )
    path = tmp_path / "tocsin.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["policy", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert 'warning: team "portal" has' in result.output and "gaps in its primary on-call" in result.output


def test_policy_check_passes_the_seed(tmp_path: Path) -> None:
    path = tmp_path / "tocsin.yaml"
    path.write_text(resources.files("tocsin.policy").joinpath("default.yaml").read_text("utf-8"), "utf-8")
    result = CliRunner().invoke(app, ["policy", "check", str(path)])
    assert result.exit_code == 0 and "warning" not in result.output


def test_untitled_roles_are_warned_about() -> None:
    policy = seed_policy_with(PEOPLE + TEAMS)
    warnings = gap_warnings(policy, datetime(2026, 3, 2, 14, tzinfo=UTC))
    assert any('step 3 (CTO): nobody has the title "CTO"' in w for w in warnings)
    assert not any("portal" in w and "gap" in w for w in warnings)
