"""Gatus-style conditions: parsing with column-exact errors, evaluation with explanations, fuzzing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.monitors.checks import CheckResult, certificate_not_after
from tocsin.monitors.conditions import ConditionError, parse
from tocsin.policy import PolicyError, load_policy_text

AT = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


def observed(
    status: int | None = 200,
    body: Any = None,
    latency_ms: float | None = 120.0,
    connected: bool = True,
    cert_days: float | None = None,
    ip: str | None = "127.0.0.1",
) -> CheckResult:
    raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    return CheckResult(
        at=AT,
        connected=connected,
        status=status,
        latency_ms=latency_ms,
        ip=ip,
        body=raw,
        certificate_expires_at=None if cert_days is None else AT + timedelta(days=cert_days),
    )


def check(text: str, result: CheckResult) -> tuple[bool, str]:
    evaluation = parse(text).evaluate(result)
    return evaluation.ok, evaluation.explanation


# ------------------------------------------------------------------------------------------- Gatus


@pytest.mark.parametrize(
    ("text", "result", "ok"),
    [
        ("[STATUS] == 200", observed(200), True),
        ("[STATUS] == 200", observed(503), False),
        ("[STATUS] != 200", observed(503), True),
        ("[STATUS] < 300", observed(204), True),
        ("[STATUS] >= 500", observed(503), True),
        ("[RESPONSE_TIME] < 300", observed(latency_ms=120.4), True),
        ("[RESPONSE_TIME] <= 120", observed(latency_ms=120.4), True),
        ("[RESPONSE_TIME] > 300", observed(latency_ms=120), False),
        ("[IP] == 127.0.0.1", observed(), True),
        ("[CONNECTED] == true", observed(), True),
        ("[CONNECTED] == false", observed(None, connected=False, latency_ms=None), True),
        ("[BODY] == pong", observed(body=b"pong"), True),
        ("[BODY].status == ok", observed(body={"status": "ok"}), True),
        ("[BODY].status == ok", observed(body={"status": "degraded"}), False),
        ("[BODY].status == UP", observed(body={"status": "UP"}), True),
        ("[BODY].data[0].id == 3", observed(body={"data": [{"id": 3}]}), True),
        ("[BODY].data[1].id == 3", observed(body={"data": [{"id": 3}]}), False),
        ("[BODY][0] == a", observed(body=["a"]), True),
        ("[BODY].count > 2", observed(body={"count": "5"}), True),
        ("[BODY].healthy == true", observed(body={"healthy": True}), True),
        ("[BODY].error == null", observed(body={"error": None}), True),
        ("[BODY].ratio == 0.5", observed(body={"ratio": 0.5}), True),
        ("len([BODY].errors) == 0", observed(body={"errors": []}), True),
        ("len([BODY].errors) == 0", observed(body={"errors": ["boom"]}), False),
        ("len([BODY]) == 4", observed(body=b"pong"), True),
        ("len([BODY].name) == 5", observed(body={"name": "tocsin"}), False),
        ("has([BODY].errors) == false", observed(body={"ok": 1}), True),
        ("has([BODY].errors) == true", observed(body={"errors": []}), True),
        ("[BODY] == pat(*<h1>ok</h1>*)", observed(body=b"<html><h1>ok</h1></html>"), True),
        ("[BODY].version == pat(1.*)", observed(body={"version": "2.0"}), False),
        ("[BODY].version != pat(1.*)", observed(body={"version": "2.0"}), True),
        ("[STATUS] == any(200, 201, 204)", observed(201), True),
        ("[STATUS] == any(200, 201, 204)", observed(500), False),
        ("[BODY].env == any(prod, staging)", observed(body={"env": "staging"}), True),
        ("[CERTIFICATE_EXPIRATION] > 48h", observed(cert_days=30), True),
        ("[CERTIFICATE_EXPIRATION] > 48h", observed(cert_days=1), False),
        ("[CERTIFICATE_EXPIRATION] > 2w", observed(cert_days=30), True),
        ("[CERTIFICATE_EXPIRATION] > 720h", observed(cert_days=29), False),
        ("[CERTIFICATE_EXPIRATION] > 0", observed(cert_days=-1), False),
        ('[BODY].message == "all good"', observed(body={"message": "all good"}), True),
    ],
)
def test_gatus_conditions(text: str, result: CheckResult, ok: bool) -> None:
    assert check(text, result)[0] is ok


@pytest.mark.parametrize(
    ("text", "result", "ok"),
    [
        ("[STATUS] == 200 and [RESPONSE_TIME] < 300", observed(200, latency_ms=100), True),
        ("[STATUS] == 200 and [RESPONSE_TIME] < 300", observed(200, latency_ms=400), False),
        ("[STATUS] == 200 or [STATUS] == 204", observed(204), True),
        ("not [STATUS] == 500", observed(200), True),
        ("not ([STATUS] >= 500 or [RESPONSE_TIME] > 1000)", observed(200, latency_ms=5), True),
        # and binds tighter than or
        ("[STATUS] == 1 and [STATUS] == 2 or [STATUS] == 200", observed(200), True),
        ("[STATUS] == 1 and ([STATUS] == 2 or [STATUS] == 200)", observed(200), False),
        ("not not [STATUS] == 200", observed(200), True),
    ],
)
def test_boolean_extensions(text: str, result: CheckResult, ok: bool) -> None:
    assert check(text, result)[0] is ok


def test_explanations_show_what_was_observed() -> None:
    assert check("[STATUS] == 200", observed(503)) == (False, "[STATUS] (503) == 200")
    assert check("[BODY].status == ok", observed(body={"status": "down"})) == (
        False,
        '[BODY].status ("down") == ok',
    )
    assert check("len([BODY].errors) == 0", observed(body={"errors": [1, 2]}))[1] == (
        "len([BODY].errors) (2) == 0"
    )
    ok, text = check("[CERTIFICATE_EXPIRATION] > 48h", observed(cert_days=1.5))
    assert (ok, text) == (False, "[CERTIFICATE_EXPIRATION] (1d12h) > 48h")
    assert check("[STATUS] == 200 and not ([RESPONSE_TIME] > 300)", observed(200, latency_ms=450))[1] == (
        "[STATUS] (200) == 200 and not ([RESPONSE_TIME] (450) > 300)"
    )


def test_missing_values_fail_every_comparison() -> None:
    refused = observed(status=None, latency_ms=None, connected=False, ip=None)
    for text in ("[STATUS] == 200", "[STATUS] != 200", "[RESPONSE_TIME] < 300", "[BODY].a == b"):
        ok, explanation = check(text, refused)
        assert not ok
        assert "(missing)" in explanation
    assert check("[BODY].a != b", observed(body=b"not json"))[0] is False
    assert check("has([BODY].a) == false", observed(body=b"not json"))[0] is True


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("", 1, "empty"),
        ("[STATUS]", 9, "expected a comparison"),
        ("[STATUS]==200", 9, "put spaces around"),
        ("[STATUS] = 200", 10, "`=` is not a comparison"),
        ("[STATUS] == ", 13, "expected a placeholder or a value"),
        ("[STAUTS] == 200", 1, "unknown placeholder [STAUTS]"),
        ("[STATUS].code == 200", 9, "only [BODY] takes a JSON path"),
        ("[BODY].data[x] == 1", 12, "not a JSON path step"),
        ("200 == 200", 1, "compares a placeholder"),
        ("[STATUS] == 200 [RESPONSE_TIME] < 3", 17, "join conditions with `and` or `or`"),
        ("([STATUS] == 200", 17, "expected a closing )"),
        ("[STATUS] == 200)", 16, "unexpected `)`"),
        ("[STATUS] == 200 and", 20, "expected a placeholder or a value"),
        ("[STATUS] < pat(2*)", 12, "pat() can only be compared with == or !="),
        ("len(200) == 3", 5, "len() takes a placeholder"),
        ("len() == 3", 5, "len() needs an argument"),
        ("[STATUS] == any(200,)", 21, "expected a value"),
        ('[BODY] == "open', 11, "unterminated string"),
        ("[STATUS] == or", 13, "quote it"),
        ("(" * 40 + "[STATUS] == 200" + ")" * 40, 33, "nested more than"),
    ],
)
def test_errors_name_the_column(text: str, column: int, message: str) -> None:
    with pytest.raises(ConditionError) as caught:
        parse(text)
    assert caught.value.column == column, str(caught.value)
    assert message in caught.value.message
    assert str(caught.value).startswith(f"column {column}: ")


POLICY = """\
organization: Acme
timezone: UTC
channels: {{alerts: "#alerts"}}
severities:
  P0: {{name: Worst, definition: Down, response: 5m, resolution: 1h, page: [primary]}}
  P1: {{name: Bad, definition: Broken, response: 5m, resolution: 1h, page: [primary]}}
  P2: {{name: Meh, definition: Slow, response: 1h, resolution: 1d, page: [primary]}}
  P3: {{name: Low, definition: Cosmetic, response: 1d, resolution: 1w, page: [primary]}}
services:
  - name: shop
    title: Shop
    components: [{{name: api, title: API}}]
monitors:
  - name: shop-health
    component: api
    url: https://shop.example/health
    conditions:
      - "[STATUS] == 200"
      - "{bad}"
"""


def test_a_bad_condition_is_a_policy_error_with_file_line_and_field() -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(POLICY.format(bad="[STATUS] == 200 and [RESPONSE_TIM] < 300"), "tocsin.yaml")
    assert str(caught.value) == (
        "tocsin.yaml:19 monitors.0.conditions.1: column 21: unknown placeholder [RESPONSE_TIM]; known: "
        "[STATUS], [RESPONSE_TIME], [IP], [CONNECTED], [BODY], [CERTIFICATE_EXPIRATION], "
        "[DOMAIN_EXPIRATION], [DNS_RCODE]"
    )


def test_a_condition_the_kind_cannot_measure_is_a_policy_error() -> None:
    text = POLICY.format(bad="[DNS_RCODE] == NOERROR")
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, "tocsin.yaml")
    assert str(caught.value) == (
        "tocsin.yaml:19 monitors.0.conditions.1: [DNS_RCODE] is not measured by http monitors"
    )
    tcp = text.replace(
        "url: https://shop.example/health", "kind: tcp\n    host: shop.example\n    port: 5432"
    )
    with pytest.raises(PolicyError) as caught:
        load_policy_text(tcp, "tocsin.yaml")
    assert "monitors.0.conditions.0: [STATUS] is not measured by tcp monitors" in str(caught.value)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("component: api", "component: web", 'tocsin.yaml:15 monitors.0.component: "web" is not a component'),
        (
            "url: https://shop.example/health",
            "url: ftp://x",
            'tocsin.yaml:16 monitors.0.url: "ftp://x" is not',
        ),
        (
            "url: https://shop.example/health",
            "host: x",
            "tocsin.yaml:14 monitors.0: an http monitor needs a url",
        ),
        (
            "conditions:",
            "interval: 5s\n    conditions:",
            "tocsin.yaml:17 monitors.0.interval: the timeout (10s) must not be longer than the interval (5s)",
        ),
        (
            "conditions:",
            "failure_threshold: 0\n    conditions:",
            "tocsin.yaml:17 monitors.0.failure_threshold:",
        ),
        ("conditions:", "method: FETCH\n    conditions:", "tocsin.yaml:17 monitors.0.method:"),
        ("conditions:", "kind: dns\n    conditions:", "tocsin.yaml:17 monitors.0.kind:"),
        (
            "conditions:",
            "severity: P7\n    conditions:",
            'tocsin.yaml:17 monitors.0.severity: "P7" is not one',
        ),
    ],
)
def test_monitor_spec_errors(old: str, new: str, expected: str) -> None:
    text = POLICY.format(bad="[RESPONSE_TIME] < 300").replace(old, new)
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, "tocsin.yaml")
    assert expected in str(caught.value)


def test_monitor_names_are_unique() -> None:
    text = POLICY.format(bad="[RESPONSE_TIME] < 300")
    text += text[text.index("  - name: shop-health") :]
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, "tocsin.yaml")
    assert 'tocsin.yaml:20 monitors.1.name: monitor "shop-health" is defined twice' in str(caught.value)


def test_default_conditions_and_round_trip() -> None:
    policy = load_policy_text(POLICY.format(bad="[BODY].status == ok"), "tocsin.yaml")
    spec = policy.monitors[0]
    assert [str(c) for c in spec.conditions] == ["[STATUS] == 200", "[BODY].status == ok"]
    assert spec.interval == timedelta(seconds=30) and spec.timeout == timedelta(seconds=10)
    assert (spec.failure_threshold, spec.success_threshold) == (3, 2)
    dumped = policy.model_dump(mode="json")
    assert dumped["monitors"][0]["conditions"] == ["[STATUS] == 200", "[BODY].status == ok"]
    again = load_policy_text(
        POLICY.format(bad="[BODY].status == ok").replace('      - "[STATUS] == 200"\n', ""), "x"
    )
    bare = again.monitors[0].model_copy(update={"conditions": []})
    assert [str(c) for c in bare.checked_conditions] == ["[STATUS] < 400"]


# ------------------------------------------------------------------------------------------- fuzz

FRAGMENTS = [
    "[STATUS]",
    "[BODY]",
    "[BODY].a",
    "[BODY].data[0].id",
    "[BODY][1]",
    "[RESPONSE_TIME]",
    "[CERTIFICATE_EXPIRATION]",
    "[CONNECTED]",
    "[IP]",
    "[DNS_RCODE]",
    "[DOMAIN_EXPIRATION]",
    "[NOPE]",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "=",
    "and",
    "or",
    "not",
    "(",
    ")",
    ",",
    "len(",
    "has(",
    "pat(",
    "any(",
    "200",
    "-1.5",
    "48h",
    "1h30m",
    "true",
    "false",
    "null",
    "ok",
    '"quoted text"',
    '"',
    "*x*",
    "99999999999999999999999999999999999999",
]


@settings(max_examples=600, deadline=None)
@given(st.text(max_size=200))
def test_parser_raises_only_condition_errors_on_any_text(text: str) -> None:
    try:
        parse(text)
    except ConditionError as error:
        assert error.column >= 1


@dataclass
class Fuzzed:
    status: int | None
    body: Any
    latency_ms: float | None
    cert_days: float | None


bodies = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["a", "data", "id", "0"]), children)
    ),
    max_leaves=8,
)


@settings(max_examples=600, deadline=None)
@given(
    st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=14),
    st.integers(100, 599) | st.none(),
    bodies | st.binary(max_size=20),
    st.floats(0, 1e6) | st.none(),
    st.floats(-1e4, 1e4) | st.none(),
)
def test_token_soup_parses_or_fails_cleanly_and_evaluates_without_raising(
    fragments: list[str], status: int | None, body: Any, latency: float | None, cert_days: float | None
) -> None:
    text = " ".join(fragments).replace("( ", "(")
    try:
        condition = parse(text)
    except ConditionError:
        return
    result = observed(status=status, body=body, latency_ms=latency, cert_days=cert_days)
    evaluation = condition.evaluate(result)
    assert isinstance(evaluation.ok, bool) and evaluation.explanation


placeholders = st.sampled_from(
    [
        *("[STATUS]", "[BODY]", "[BODY].a", "[BODY].data[0].id", "[BODY][1]", "[RESPONSE_TIME]", "[IP]"),
        *("[CERTIFICATE_EXPIRATION]", "[CONNECTED]", "[DNS_RCODE]", "[DOMAIN_EXPIRATION]"),
    ]
)
values = st.sampled_from(["200", "-1.5", "48h", "1h30m", "true", "false", "null", "ok", '"two words"', "0"])
operands = st.one_of(
    placeholders,
    placeholders.map(lambda p: f"len({p})"),
    placeholders.map(lambda p: f"has({p})"),
)
comparisons = st.one_of(
    st.tuples(operands, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), values | placeholders),
    st.tuples(operands, st.sampled_from(["==", "!="]), values.map(lambda v: f'pat("*{v.strip(chr(34))}*")')),
    st.tuples(
        operands,
        st.sampled_from(["==", "!="]),
        st.lists(values, min_size=1, max_size=3).map(lambda vs: f"any({', '.join(vs)})"),
    ),
).map(" ".join)
conditions = st.recursive(
    comparisons,
    lambda inner: st.one_of(
        inner.map(lambda c: f"not ({c})"),
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
    ),
    max_leaves=6,
)


@settings(max_examples=600, deadline=None)
@given(
    conditions,
    st.integers(100, 599) | st.none(),
    bodies | st.binary(max_size=20),
    st.floats(0, 1e6) | st.none(),
    st.floats(-1e4, 1e4) | st.none(),
)
def test_generated_conditions_parse_and_evaluate(
    text: str, status: int | None, body: Any, latency: float | None, cert_days: float | None
) -> None:
    condition = parse(text)
    assert parse(str(condition)) == condition
    result = observed(status=status, body=body, latency_ms=latency, cert_days=cert_days)
    evaluation = condition.evaluate(result)
    assert isinstance(evaluation.ok, bool) and evaluation.explanation


# ----------------------------------------------------------------------------- certificate reading


def test_certificate_not_after_rejects_garbage() -> None:
    for der in (b"", b"\x30", b"\x30\x82\xff\xff", b"\x30\x03\x02\x01\x01", bytes(64)):
        with pytest.raises(ValueError):
            certificate_not_after(der)
