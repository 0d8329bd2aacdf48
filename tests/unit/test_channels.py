from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from tocsin.incidents.channels import SLACK_MAX, channel_name, slugify

DAY = date(2026, 11, 26)


def test_slug_follows_slack_rules() -> None:
    assert slugify("Auth System DOWN — magic links fail!") == "auth-system-down-magic-links-fail"
    assert slugify("Café  crème") == "cafe-creme"
    assert slugify("<script>alert(1)</script>") == "script-alert-1-script"


def test_name_and_suffix() -> None:
    assert channel_name("incident", DAY, "DB timeouts", set()) == "#incident-2026-11-26-db-timeouts"
    taken = {"#incident-2026-11-26-db-timeouts", "#incident-2026-11-26-db-timeouts-2"}
    assert channel_name("incident", DAY, "DB timeouts", taken) == "#incident-2026-11-26-db-timeouts-3"


def test_empty_description_keeps_the_date() -> None:
    assert channel_name("incident", DAY, "!!!", set()) == "#incident-2026-11-26"


@given(st.text(max_size=300), st.sets(st.integers(min_value=2, max_value=30), max_size=5))
def test_always_valid_and_at_most_80(description: str, suffixes: set[int]) -> None:
    base = channel_name("incident", DAY, description, set())
    taken = {base} | {f"{base}-{n}" for n in suffixes}
    name = channel_name("incident", DAY, description, taken)
    assert name not in taken
    bare = name[1:]
    assert len(bare) <= SLACK_MAX
    assert all(c.isascii() and (c.islower() or c.isdigit() or c == "-") for c in bare)
    assert not bare.endswith("-")
