"""Silence matchers as people type them, read and written back."""

from __future__ import annotations

import pytest

from tocsin.alerts.matchers import filter_text, matcher_text, matches, parse_filter, parse_matcher


@pytest.mark.parametrize(
    ("text", "name", "value", "is_regex", "is_equal", "back"),
    [
        ("alertname=DiskFull", "alertname", "DiskFull", False, True, "alertname=DiskFull"),
        ("instance != db-1 ", "instance", "db-1", False, False, "instance!=db-1"),
        ('instance=~"db-.*"', "instance", "db-.*", True, True, "instance=~db-.*"),
        ("job!~api|web", "job", "api|web", True, False, "job!~api|web"),
        ("team=", "team", "", False, True, "team="),  # matches alerts without the label
        ("url=http://x/?a=b", "url", "http://x/?a=b", False, True, "url=http://x/?a=b"),
    ],
)
def test_each_form_reads_and_writes_back(
    text: str, name: str, value: str, is_regex: bool, is_equal: bool, back: str
) -> None:
    matcher = parse_matcher(text)
    assert matcher == {"name": name, "value": value, "is_regex": is_regex, "is_equal": is_equal}
    assert matcher_text(matcher) == back
    assert parse_matcher(matcher_text(matcher)) == matcher


@pytest.mark.parametrize("text", ["", "alertname", "1abc=x", "a b=c", "=x"])
def test_what_is_not_a_matcher_says_which_forms_are(text: str) -> None:
    with pytest.raises(ValueError, match="is not a matcher: name=value, name!=value"):
        parse_matcher(text)


def test_a_value_that_starts_with_a_quote_or_has_spaces_round_trips_quoted() -> None:
    for value in ['"quoted"', " padded ", 'say "hi"', "back\\slash\\"]:
        matcher = {"name": "note", "value": value, "is_regex": False, "is_equal": True}
        assert parse_matcher(matcher_text(matcher)) == matcher


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("{}", []),
        ('{alertname="DiskFull"}', [("alertname", "=", "DiskFull")]),
        (
            '{alertname="DiskFull", instance=~"db-.*"}',
            [("alertname", "=", "DiskFull"), ("instance", "=~", "db-.*")],
        ),
        ("alertname=DiskFull,job!=node ,", [("alertname", "=", "DiskFull"), ("job", "!=", "node")]),
        ('msg="a, b", x!~"y|z"', [("msg", "=", "a, b"), ("x", "!~", "y|z")]),  # a comma inside quotes
        (r'msg="say \"hi\", then \\ go"', [("msg", "=", 'say "hi", then \\ go')]),
        ('team=""', [("team", "=", "")]),
    ],
)
def test_a_filter_is_matchers_separated_by_commas_as_alertmanager_writes_it(
    text: str, expected: list[tuple[str, str, str]]
) -> None:
    found = parse_filter(text)
    assert found == [
        {"name": name, "value": value, "is_regex": "~" in op, "is_equal": op[0] != "!"}
        for name, op, value in expected
    ]
    assert parse_filter(filter_text(found)) == found


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alertname", "is not a matcher"),
        ('alertname="DiskFull, job=node', "no closing quote"),
        (r'alertname="DiskFull\"', "no closing quote"),
        ('instance=~"db-("', "not a regular expression"),
        ("a=b, 9=c", "is not a matcher"),
    ],
)
def test_a_filter_that_cannot_be_read_says_which_part(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_filter(text)


@pytest.mark.parametrize(
    ("matcher", "labels", "hit"),
    [
        ("alertname=DiskFull", {"alertname": "DiskFull"}, True),
        ("alertname=DiskFull", {"alertname": "DiskFull2"}, False),
        ("team=", {}, True),  # a missing label reads as empty
        ("team!=", {}, False),
        ("team!=ops", {}, True),
        ("instance=~db-.*", {"instance": "db-1"}, True),
        ("instance=~db", {"instance": "db-1"}, False),  # the whole value, as Alertmanager anchors it
        ("instance!~db-.*", {"instance": "web-1"}, True),
        ("code=500", {"code": 500}, True),  # a sender's number compares as text
    ],
)
def test_what_a_matcher_matches(matcher: str, labels: dict[str, object], hit: bool) -> None:
    assert matches(parse_matcher(matcher), labels) is hit
