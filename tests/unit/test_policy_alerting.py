"""The alerting section: severity rules, and its severities checked against the policy's."""

from __future__ import annotations

import pytest

from tocsin.policy.alerting import SeverityRule
from tocsin.policy.loader import PolicyError, default_policy, load_policy_text

BASE = """\
organization: Test
timezone: UTC
channels:
  alerts: "#alerts"
severities:
  P1: {name: High, definition: d, response: 30m, resolution: 4h, page: [primary]}
  P2: {name: Medium, definition: d, response: 2h, resolution: 1d, page: [primary]}
"""


def test_seed_rules() -> None:
    alerting = default_policy().alerting
    assert alerting.severity_for({"severity": "critical"})[0] == "P0"
    assert alerting.severity_for({"severity": "warning", "component": "authentication"}) == (
        "P1",
        "authentication system down",
    )
    assert alerting.severity_for({"severity": "warning"})[0] == "P2"
    assert alerting.severity_for({"severity": "info"})[0] == "P3"
    assert alerting.severity_for({})[0] == "P2"


def test_an_omitted_section_is_fitted_to_the_policys_severities() -> None:
    policy = load_policy_text(BASE, "tocsin.yaml")
    assert policy.alerting.default_severity == "P2"
    assert policy.alerting.complete_outage_severity == "P1"
    assert {r.severity for r in policy.alerting.severity_rules} <= {"P1", "P2"}


def test_a_written_section_naming_an_unknown_severity_is_an_error() -> None:
    text = (
        BASE
        + "alerting:\n  default_severity: P2\n  complete_outage_severity: P1\n  severity_rules:\n    - match: {severity: critical}\n      severity: P0\n"
    )
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, "tocsin.yaml")
    (issue,) = caught.value.issues
    assert issue.line == 8 and issue.field == "alerting"
    assert 'alerting.severity_rules.0.severity: "P0" is not one of' in issue.message


def test_remembered_severities_follow_the_labels_and_the_integrations_rules() -> None:
    alerting = default_policy().alerting
    page_all = (SeverityRule(match={"team": "db"}, severity="P0", reason="the database team pages"),)
    for _ in range(2):  # the second time from memory
        assert alerting.severity_for({"severity": "warning", "instance": "a"})[0] == "P2"
        assert alerting.severity_for({"severity": "warning", "instance": "b"}) == (
            "P2",
            alerting.severity_for({"severity": "warning", "instance": "a"})[1],
        )
        assert alerting.severity_for({"severity": "critical", "instance": "a"})[0] == "P0"
        assert alerting.severity_for({"severity": "warning", "team": "db"})[0] == "P2"
        assert alerting.severity_for({"severity": "warning", "team": "db"}, page_all) == (
            "P0",
            "the database team pages",
        )
        assert alerting.severity_for({"severity": "warning", "team": "web"}, page_all)[0] == "P2"
    other = (SeverityRule(match={"team": "db"}, severity="P3"),)
    assert alerting.severity_for({"severity": "warning", "team": "db"}, other) == ("P3", "team=db")
