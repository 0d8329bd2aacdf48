"""Silence matchers as people type them, read and written back."""

from __future__ import annotations

import pytest

from tocsin.alerts.matchers import matcher_text, parse_matcher


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
