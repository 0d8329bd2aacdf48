"""Health-check conditions in Gatus' syntax (`[STATUS] == 200`), extended with `and`, `or`, `not` and (...).

A condition is parsed once, when the policy loads, by a tokenizer and a recursive-descent parser (never
eval), so a typo is a policy error naming its column. Evaluating it against what a check observed gives
pass or fail and the condition written out with the observed values: ``[STATUS] (503) == 200``.

The grammar is in condition_syntax.py. A placeholder or a JSON path that has no value (no response, no
such key) fails every comparison it is in.
"""

from __future__ import annotations

import fnmatch
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from tocsin.monitors.condition_syntax import (
    DURATION_PLACEHOLDERS,
    MAX_LENGTH,
    NUMBER,
    BoolOp,
    Call,
    Comparison,
    ConditionError,
    Constant,
    Expr,
    Not,
    Operand,
    Parser,
    Placeholder,
    walk,
)

__all__ = ["MISSING", "Condition", "ConditionError", "Evaluation", "Observed", "parse"]


class Observed(Protocol):
    """What a check saw; absent values are None."""

    @property
    def at(self) -> datetime: ...
    @property
    def connected(self) -> bool: ...
    @property
    def status(self) -> int | None: ...
    @property
    def latency_ms(self) -> float | None: ...
    @property
    def ip(self) -> str | None: ...
    @property
    def body(self) -> bytes | None: ...
    @property
    def certificate_expires_at(self) -> datetime | None: ...
    @property
    def domain_expires_at(self) -> datetime | None: ...
    @property
    def dns_rcode(self) -> str | None: ...
    def json(self) -> Any: ...


class _Missing:
    def __repr__(self) -> str:
        return "missing"


MISSING: Any = _Missing()  # a value that was not observed: every comparison with it fails


# ------------------------------------------------------------------------------------------ evaluation


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The outcome of one condition: pass or fail, and the condition with the values it saw."""

    ok: bool
    explanation: str


@dataclass(frozen=True)
class Condition:
    """A parsed condition; str() gives it back as written."""

    text: str
    expr: Expr = field(repr=False, compare=False)

    def __str__(self) -> str:
        return self.text

    @property
    def placeholders(self) -> frozenset[str]:
        """The names of the placeholders it reads, e.g. {"STATUS", "BODY"}."""
        names: set[str] = set()
        for comparison in walk(self.expr):
            for side in (comparison.left, comparison.right):
                if isinstance(side, Placeholder):
                    names.add(side.name)
                elif isinstance(side, Call):
                    names.update(a.name for a in side.args if isinstance(a, Placeholder))
        return frozenset(names)

    def evaluate(self, observed: Observed) -> Evaluation:
        """Whether the observation satisfies the condition, with the observed values written in."""
        ok, explanation = _evaluate(self.expr, observed)
        return Evaluation(ok, explanation)


def parse(text: str) -> Condition:
    """Parse a condition; raise ConditionError naming the column of the first problem."""
    if not isinstance(text, str):
        raise ConditionError("a condition is text, e.g. [STATUS] == 200", 1)
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"longer than {MAX_LENGTH} characters", MAX_LENGTH + 1)
    return Condition(text.strip(), Parser(text).parse())


def _evaluate(expr: Expr, observed: Observed) -> tuple[bool, str]:
    if isinstance(expr, Comparison):
        return _compare(expr, observed)
    if isinstance(expr, Not):
        ok, text = _evaluate(expr.operand, observed)
        return not ok, f"not ({text})" if not isinstance(expr.operand, Not) else f"not {text}"
    results = [_evaluate(item, observed) for item in expr.items]
    texts = [
        f"({t})" if isinstance(item, BoolOp) else t for item, (_, t) in zip(expr.items, results, strict=True)
    ]
    oks = [ok for ok, _ in results]
    return (all(oks) if expr.op == "and" else any(oks)), f" {expr.op} ".join(texts)


def _placeholder_value(p: Placeholder, observed: Observed) -> Any:
    name = p.name
    if name == "STATUS":
        value: Any = observed.status
    elif name == "RESPONSE_TIME":
        value = None if observed.latency_ms is None else round(observed.latency_ms)
    elif name == "IP":
        value = observed.ip
    elif name == "CONNECTED":
        value = observed.connected
    elif name == "DNS_RCODE":
        value = observed.dns_rcode
    elif name in DURATION_PLACEHOLDERS:
        until = (
            observed.certificate_expires_at
            if name == "CERTIFICATE_EXPIRATION"
            else observed.domain_expires_at
        )
        value = None if until is None else (until - observed.at).total_seconds() * 1000
    elif not p.path:
        value = None if observed.body is None else observed.body.decode("utf-8", "replace")
    else:
        return _json_path(observed.json(), p.path)  # JSON null is a value; only an absent key is missing
    return MISSING if value is None else value


def _json_path(document: Any, path: tuple[str | int, ...]) -> Any:
    current = document
    for step in path:
        in_list = isinstance(step, int) and isinstance(current, list) and step < len(current)
        if not (in_list or (isinstance(step, str) and isinstance(current, dict) and step in current)):
            return MISSING
        current = current[step]
    return current


def _operand(operand: Operand, observed: Observed) -> tuple[Any, str]:
    """(value, how to show it) of an operand; pat() and any() stay as their Call."""
    if isinstance(operand, Constant):
        return operand, _show_constant(operand)
    if isinstance(operand, Placeholder):
        value = _placeholder_value(operand, observed)
        return value, f"{operand.text} ({_show(value, operand.name in DURATION_PLACEHOLDERS)})"
    if operand.func in ("pat", "any"):
        return (
            operand,
            f"{operand.func}({', '.join(_show_constant(a) for a in operand.args if isinstance(a, Constant))})",
        )
    (arg,) = operand.args
    assert isinstance(arg, Placeholder)
    value = _placeholder_value(arg, observed)
    if operand.func == "has":
        result: Any = value is not MISSING
    elif value is MISSING:
        result = MISSING
    else:
        result = len(value) if isinstance(value, str | list | dict) else len(_text(value))
    return result, f"{operand.func}({arg.text}) ({_show(result, False)})"


def _compare(c: Comparison, observed: Observed) -> tuple[bool, str]:
    left, left_text = _operand(c.left, observed)
    right, right_text = _operand(c.right, observed)
    text = f"{left_text} {c.op} {right_text}"
    if left is MISSING or right is MISSING:
        return False, text
    if isinstance(left, Call):
        left, right = right, left
    if isinstance(right, Call):  # pat() or any(): == and != only, checked by the parser
        matched = _matches(left, right)
        return (matched if c.op == "==" else not matched), text
    a, b = _number(left), _number(right)
    if c.op in ("==", "!="):
        equal = a == b if a is not None and b is not None else _text(left) == _text(right)
        return (equal if c.op == "==" else not equal), text
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return False, text
    passed = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[c.op]
    return passed, text


def _matches(value: Any, call: Call) -> bool:
    if isinstance(value, Constant):
        return False  # the parser never lets two constants meet; a defensive no
    texts = [a.text for a in call.args if isinstance(a, Constant)]
    if call.func == "pat":
        return fnmatch.fnmatchcase(_text(value), texts[0])
    number = _number(value)
    return any(
        (number is not None and const.number is not None and number == const.number)
        or _text(value) == const.text
        for const in call.args
        if isinstance(const, Constant)
    )


def _number(value: Any) -> float | None:
    if isinstance(value, Constant):
        return value.number
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and NUMBER.fullmatch(value.strip()):
        return float(value)
    return None


def _text(value: Any) -> str:
    if isinstance(value, Constant):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def _show_constant(c: Constant) -> str:
    return json.dumps(c.text) if c.quoted else c.text


def _show(value: Any, duration: bool) -> str:
    if value is MISSING:
        return "missing"
    if duration and isinstance(value, int | float):
        return _show_duration(value)
    text = _text(value)
    if isinstance(value, str):
        text = json.dumps(text if len(text) <= 60 else text[:57] + "...")
    elif isinstance(value, dict | list) and len(text) > 60:
        text = text[:57] + "..."
    return text


def _show_duration(ms: float) -> str:
    if math.isnan(ms) or math.isinf(ms):
        return str(ms)
    sign, seconds = ("-" if ms < 0 else ""), int(abs(ms) // 1000)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
        if len(parts) == 2:
            break
    return sign + ("".join(parts) or f"{round(abs(ms))}ms")
