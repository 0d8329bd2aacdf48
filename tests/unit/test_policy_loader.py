from pathlib import Path

import pytest

from tocsin.policy import Policy, PolicyError, PolicyIssue, load_policy, load_policy_text

VALID = """\
organization: Acme
timezone: Europe/Berlin
channels:
  alerts: "#acme-alerts"
severities:
  P0:
    name: Critical
    definition: Everything is down
    response: 15m
    resolution: 1h
    page: [full_team]
"""

BROKEN = """\
organization: Acme
timezone: Mars/Olympus
channels:
  alerts: "#acme-alerts"
severities:
  P0:
    name: Critical
    definition: Everything is down
    response: 15m
    resolution: 1h
    page: [full_team, managment]
  P1:
    name: High
    definition: Most things are down
    response: 3O m
    resolution: 4h
    escalate_after: 2h
    pgae: [primary]
  critical:
    name: Also bad
    definition: Bad
    response: 1h
    resolution: 1d
    page: [primary]
services:
  - name: portal
    title: Portal
    components:
      - {name: api, title: API}
      - {name: web, title: Web}
      - {name: Status Page, title: Status page}
"""


def issues_of(text: str, filename: str = "tocsin.yaml") -> list[str]:
    with pytest.raises(PolicyError) as raised:
        load_policy_text(text, filename)
    return [str(issue) for issue in raised.value.issues]


def test_valid_text_loads() -> None:
    assert isinstance(load_policy_text(VALID, "tocsin.yaml"), Policy)


def test_every_error_is_reported_with_file_line_and_field() -> None:
    assert issues_of(BROKEN) == [
        'tocsin.yaml:2 timezone: "Mars/Olympus" is not a time zone: '
        'use an IANA name such as "America/New_York"',
        "tocsin.yaml:11 severities.P0.page.1: "
        "Input should be 'primary', 'backup', 'full_team' or 'management'",
        "tocsin.yaml:12 severities.P1.page: required key is missing",
        'tocsin.yaml:15 severities.P1.response: "3O m" is not a duration',
        'tocsin.yaml:18 severities.P1.pgae: unknown key; did you mean "page"?',
        'tocsin.yaml:19 severities.critical: "critical" is not a severity key: '
        "use P and one digit, P0 (worst) to P9",
        'tocsin.yaml:31 services.0.components.2.name: "Status Page" is not a name '
        "(lowercase words joined by -)",
    ]


def test_policy_error_message_lists_every_issue() -> None:
    with pytest.raises(PolicyError) as raised:
        load_policy_text(BROKEN, "tocsin.yaml")
    assert str(raised.value).splitlines() == [str(issue) for issue in raised.value.issues]
    assert len(raised.value.issues) == 7


def test_issue_format() -> None:
    issue = PolicyIssue("tocsin.yaml", 12, "severities.P1.response", '"3O m" is not a duration')
    assert str(issue) == 'tocsin.yaml:12 severities.P1.response: "3O m" is not a duration'
    assert str(PolicyIssue("tocsin.yaml", None, "", "file not found")) == "tocsin.yaml: file not found"


def test_unknown_key_without_a_close_match_lists_the_allowed_keys() -> None:
    text = VALID + "status_page:\n  update_within: 30m\n  zzz: 1\n"
    assert issues_of(text) == [
        "tocsin.yaml:14 status_page.zzz: unknown key; expected one of: update_within, customer_facing_only, "
        "maintenance_reminder, allow_private_webhooks, subscribe_limit, export_dir"
    ]


def test_unknown_top_level_key() -> None:
    assert issues_of(VALID + "severites: {}\n") == [
        'tocsin.yaml:12 severites: unknown key; did you mean "severities"?'
    ]


def test_missing_required_sections() -> None:
    assert issues_of("organization: Acme\n") == [
        "tocsin.yaml:1 channels: required key is missing",
        "tocsin.yaml:1 severities: required key is missing",
        "tocsin.yaml:1 timezone: required key is missing",
    ]


def test_yaml_syntax_error_has_the_line() -> None:
    assert issues_of("organization: Acme\nseverities:\n  P0: [unclosed\n  P1: x\n") == [
        "tocsin.yaml:4: invalid YAML: expected ',' or ']', but got ':' (while parsing a flow sequence)"
    ]
    assert issues_of("organization: Acme\ntimezone: \x07\n") == [
        "tocsin.yaml:2: invalid YAML: special characters are not allowed"
    ]
    assert issues_of("a: 1\n---\nb: 2\n") == [
        "tocsin.yaml:2: invalid YAML: but found another document (expected a single document in the stream)"
    ]


def test_unsafe_tags_are_refused() -> None:
    assert issues_of("organization: !!python/object/apply:os.system [true]\n") == [
        "tocsin.yaml:1: invalid YAML: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system'"
    ]


def test_numeric_severity_key() -> None:
    text = VALID.replace("  P0:", "  0:")
    assert issues_of(text) == [
        'tocsin.yaml:6 severities.0: "0" is not a severity key: use P and one digit, P0 (worst) to P9'
    ]


def test_duplicate_keys_are_errors() -> None:
    text = VALID + "organization: Other\n"
    assert issues_of(text) == ["tocsin.yaml:12 organization: duplicate key"]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(text: str) -> None:
    assert issues_of(text) == ["tocsin.yaml: the policy file is empty"]


def test_top_level_must_be_a_mapping() -> None:
    assert issues_of("- a\n- b\n") == ["tocsin.yaml:1: expected a mapping of policy sections"]


def test_file_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "tocsin.yaml"
    with pytest.raises(PolicyError) as raised:
        load_policy(missing)
    assert [str(issue) for issue in raised.value.issues] == [f"{missing}: file not found"]


def test_load_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "tocsin.yaml"
    path.write_text(VALID, encoding="utf-8")
    assert load_policy(path).organization == "Acme"
    path.write_text(VALID.replace("15m", "15 minutes"), encoding="utf-8")
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    assert [str(issue) for issue in raised.value.issues] == [
        f'{path}:9 severities.P0.response: "15 minutes" is not a duration'
    ]


def test_unquoted_times_and_impossible_dates() -> None:
    policy = load_policy_text(VALID + "business_hours: {opens: 8:30, closes: 16:00}\n", "tocsin.yaml")
    assert (policy.business_hours.opens.isoformat(), policy.business_hours.closes.isoformat()) == (
        "08:30:00",
        "16:00:00",
    )
    [issue] = issues_of(VALID + "holidays:\n  - 2026-12-25\n  - 2026-02-30\n")
    assert issue.startswith("tocsin.yaml:14 holidays.1: ")


def test_business_hours_must_open_before_closing() -> None:
    assert issues_of(VALID + 'business_hours: {opens: "17:00", closes: "09:00"}\n') == [
        "tocsin.yaml:12 business_hours.closes: closes (09:00) must be after opens (17:00)"
    ]


def test_names_are_validated() -> None:
    text = VALID + (
        "channels_extra: 1\n"
        "escalation_chains:\n"
        "  Tech Chain:\n"
        "    steps: [{role: SRE}]\n"
        "services:\n"
        "  - {name: portal, title: Portal, components: [{name: api, title: API}]}\n"
        "  - {name: api, title: API}\n"
    )
    assert issues_of(text.replace('"#acme-alerts"', '"#Acme Alerts"')) == [
        'tocsin.yaml:4 channels.alerts: "#Acme Alerts" is not a Slack channel '
        "(# and up to 80 of a-z 0-9 - _)",
        'tocsin.yaml:12 channels_extra: unknown key; did you mean "channels"?',
        'tocsin.yaml:14 escalation_chains.Tech Chain: "Tech Chain" is not a name '
        "(lowercase words joined by -)",
        'tocsin.yaml:16 services: service or component "api" is defined twice',
    ]


def test_severities_must_not_be_empty() -> None:
    text = VALID[: VALID.index("severities:")] + "severities: {}\n"
    assert issues_of(text) == ["tocsin.yaml:5 severities: define at least one severity, e.g. P0"]


def test_templates_are_checked() -> None:
    text = VALID + (
        "templates:\n"
        "  status_initial: 'Looking into {{ descripton }}'\n"
        "  status_resolution: 'Fixed {% if %}'\n"
        "  postmortem: '# {{ title }}'\n"
    )
    issues = issues_of(text)
    assert issues[0] == (
        "tocsin.yaml:13 templates.status_initial: unknown template variable descripton; "
        "allowed: description, organization, posted_at, severity, title"
    )
    assert issues[1].startswith("tocsin.yaml:14 templates.status_resolution: template line 1: ")


@pytest.mark.parametrize("name", ["America", "", "../etc/passwd", "/etc/passwd", "america/new_york", "EST 5"])
def test_unknown_time_zones(name: str) -> None:
    [issue] = issues_of(VALID.replace("Europe/Berlin", f'"{name}"'))
    assert issue.startswith(f'tocsin.yaml:2 timezone: "{name}" is not a time zone')


def test_policy_integrations_route_to_known_services_each_with_a_key_of_its_own() -> None:
    text = VALID + (
        "services:\n"
        "  - {name: portal, title: Portal, components: [{name: api, title: API}]}\n"
        "alerting:\n"
        "  default_severity: P0\n"
        "  integrations:\n"
        "    - {name: prom, kind: prometheus, service: portal, key_env: PROM_KEY}\n"
        "    - name: am\n"
        "      kind: alertmanager\n"
        "      service: billing\n"
        "      key_env: PROM_KEY\n"
    )
    assert issues_of(text) == [
        'tocsin.yaml:20 alerting.integrations.1.service: unknown service "billing" '
        "(define it under services; known: portal)",
        'tocsin.yaml:21 alerting.integrations.1.key_env: PROM_KEY is integration "prom"\'s key already; '
        "give each integration its own",
    ]
