"""Health-check conditions in Gatus' syntax (`[STATUS] == 200`), extended with `and`, `or`, `not` and (...).

A condition is parsed once, when the policy loads, by a tokenizer and a recursive-descent parser (never
eval), so a typo is a policy error naming its column. Evaluating it against what a check observed gives
pass or fail and the condition written out with the observed values: ``[STATUS] (503) == 200``.

Grammar (``not`` binds tighter than ``and``, ``and`` tighter than ``or``)::

    condition  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | "(" or ")" | comparison
    comparison := operand ("==" | "!=" | "<" | "<=" | ">" | ">=") operand
    operand    := placeholder | len(placeholder) | has(placeholder) | pat(text) | any(text, ...) | literal

A placeholder or a JSON path that has no value (no response, no such key) fails every comparison it is in.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

MAX_LENGTH = 2000
MAX_DEPTH = 32  # nesting of parentheses and `not`: deeper is surely a mistake, and recursion is bounded
PLACEHOLDERS = (
    "STATUS",
    "RESPONSE_TIME",
    "IP",
    "CONNECTED",
    "BODY",
    "CERTIFICATE_EXPIRATION",
    "DOMAIN_EXPIRATION",
    "DNS_RCODE",
)
DURATION_PLACEHOLDERS = frozenset({"CERTIFICATE_EXPIRATION", "DOMAIN_EXPIRATION"})
FUNCTIONS = ("len", "has", "pat", "any")
OPERATORS = ("==", "!=", "<=", ">=", "<", ">")
Operator = Literal["==", "!=", "<", "<=", ">", ">="]

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_DURATION_PART = re.compile(r"(\d+)(ms|w|d|h|m|s)")
_DURATION = re.compile(r"(?:\d+(?:ms|w|d|h|m|s))+")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PLACEHOLDER = re.compile(r"\[([A-Za-z_]+)\]")
_PATH_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")


class ConditionError(ValueError):
    """A condition that cannot be parsed; `column` (1-based) is where the problem is."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"column {column}: {message}")
        self.message = message
        self.column = column


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


# ---------------------------------------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class Token:
    kind: Literal["word", "string", "op", "(", ")", ",", "end"]
    text: str
    column: int


def tokenize(text: str) -> list[Token]:
    """Split a condition into words, quoted strings, operators and punctuation."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "(),":
            tokens.append(Token(ch, ch, i + 1))  # type: ignore[arg-type]
            i += 1
        elif ch in "\"'":
            start, i, chars = i, i + 1, []
            while i < n and text[i] != ch:
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(text[i])
                i += 1
            if i >= n:
                raise ConditionError(f"unterminated string: add the closing {ch}", start + 1)
            tokens.append(Token("string", "".join(chars), start + 1))
            i += 1
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in "(),":
                i += 1
            word = text[start:i]
            tokens.append(Token("op" if word in OPERATORS else "word", word, start + 1))
    tokens.append(Token("end", "", n + 1))
    return tokens


# ------------------------------------------------------------------------------------------------- AST


@dataclass(frozen=True, slots=True)
class Placeholder:
    name: str
    path: tuple[str | int, ...]
    text: str
    column: int


@dataclass(frozen=True, slots=True)
class Constant:
    """A literal as written: `200`, `48h`, `ok`, `true`, `"two words"`."""

    text: str
    quoted: bool
    column: int
    number: float | None  # numbers as is; durations in milliseconds
    duration: bool


@dataclass(frozen=True, slots=True)
class Call:
    func: Literal["len", "has", "pat", "any"]
    args: tuple[Placeholder | Constant, ...]
    column: int


Operand = Placeholder | Constant | Call


@dataclass(frozen=True, slots=True)
class Comparison:
    left: Operand
    op: Operator
    right: Operand
    column: int


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: Literal["and", "or"]
    items: tuple[Expr, ...]


Expr = Comparison | Not | BoolOp


# ---------------------------------------------------------------------------------------------- parser


def _duration_ms(text: str) -> float | None:
    if not _DURATION.fullmatch(text):
        return None
    return sum(float(count) * _UNIT_MS[unit] for count, unit in _DURATION_PART.findall(text))


def _constant(token: Token) -> Constant:
    if token.kind == "string":
        return Constant(token.text, True, token.column, None, False)
    if _NUMBER.fullmatch(token.text):
        return Constant(token.text, False, token.column, float(token.text), False)
    duration = _duration_ms(token.text)
    return Constant(token.text, False, token.column, duration, duration is not None)


def _placeholder(token: Token) -> Placeholder:
    word, column = token.text, token.column
    match = _PLACEHOLDER.match(word)
    if match is None:
        raise ConditionError(f'"{word}" is not a placeholder such as [STATUS] or [BODY].data[0].id', column)
    name = match[1]
    if name not in PLACEHOLDERS:
        known = ", ".join(f"[{p}]" for p in PLACEHOLDERS)
        raise ConditionError(f"unknown placeholder [{name}]; known: {known}", column)
    path: list[str | int] = []
    pos = match.end()
    while pos < len(word):
        step = _PATH_STEP.match(word, pos)
        if step is None:
            rest = word[pos:]
            if any(rest.startswith(op) for op in OPERATORS):
                raise ConditionError("put spaces around the comparison operator", column + pos)
            raise ConditionError(
                f'"{rest}" is not a JSON path step (write .key or [index], e.g. [BODY].data[0].id)',
                column + pos,
            )
        path.append(step[1] if step[1] is not None else int(step[2]))
        pos = step.end()
    if path and name != "BODY":
        raise ConditionError(f"only [BODY] takes a JSON path, not [{name}]", column + match.end())
    return Placeholder(name, tuple(path), word, column)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.pos = 0
        self.depth = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind != "end":
            self.pos += 1
        return token

    def is_word(self, word: str) -> bool:
        return self.token.kind == "word" and self.token.text == word

    def expect(self, kind: str, what: str) -> Token:
        token = self.token
        if token.kind != kind:
            raise ConditionError(f"expected {what}, found {_describe(token)}", token.column)
        return self.take()

    def parse(self) -> Expr:
        if self.token.kind == "end":
            raise ConditionError("the condition is empty; write e.g. [STATUS] == 200", 1)
        expr = self.or_()
        token = self.tokens[self.pos]
        if token.kind != "end":
            hint = "; join conditions with `and` or `or`" if token.kind == "word" else ""
            raise ConditionError(f"unexpected {_describe(token)}{hint}", token.column)
        return expr

    def nested(self, opening: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConditionError(f"nested more than {MAX_DEPTH} deep", opening.column)

    def or_(self) -> Expr:
        items = [self.and_()]
        while self.is_word("or"):
            self.take()
            items.append(self.and_())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def and_(self) -> Expr:
        items = [self.not_()]
        while self.is_word("and"):
            self.take()
            items.append(self.not_())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def not_(self) -> Expr:
        if self.is_word("not"):
            self.nested(self.take())
            inner = self.not_()
            self.depth -= 1
            return Not(inner)
        if self.token.kind == "(":
            self.nested(self.take())
            inner = self.or_()
            self.depth -= 1
            self.expect(")", "a closing )")
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        column = self.token.column
        left = self.operand()
        token = self.token
        if token.kind != "op":
            ops = " ".join(OPERATORS)
            if token.kind == "word" and any(token.text.startswith(op) for op in OPERATORS):
                raise ConditionError("put spaces around the comparison operator", token.column)
            if token.kind == "word" and token.text[:1] in "=!<>":
                raise ConditionError(f"`{token.text}` is not a comparison; use one of {ops}", token.column)
            raise ConditionError(f"expected a comparison ({ops}), found {_describe(token)}", token.column)
        op: Operator = self.take().text  # type: ignore[assignment]
        right = self.operand()
        for side, other in ((left, right), (right, left)):
            if isinstance(side, Call) and side.func in ("pat", "any"):
                if op not in ("==", "!="):
                    raise ConditionError(f"{side.func}() can only be compared with == or !=", side.column)
                if not _observes(other):
                    raise ConditionError(f"compare {side.func}() with a placeholder", side.column)
        if not any(_observes(side) for side in (left, right)):
            raise ConditionError("a condition compares a placeholder such as [STATUS] with a value", column)
        return Comparison(left, op, right, column)

    def operand(self) -> Operand:
        token = self.token
        if token.kind == "word" and token.text in FUNCTIONS and self.tokens[self.pos + 1].kind == "(":
            return self.call()
        if token.kind == "word" and token.text.startswith("["):
            self.take()
            return _placeholder(token)
        if token.kind == "word" and token.text in ("and", "or", "not"):
            raise ConditionError(
                f"expected a value, found `{token.text}`; quote it to mean the word", token.column
            )
        if token.kind in ("word", "string"):
            return _constant(self.take())
        raise ConditionError(f"expected a placeholder or a value, found {_describe(token)}", token.column)

    def call(self) -> Call:
        name = self.take()
        self.take()  # (
        func: Literal["len", "has", "pat", "any"] = name.text  # type: ignore[assignment]
        args: list[Placeholder | Constant] = []
        while True:
            token = self.token
            if token.kind == ")" and not args:
                raise ConditionError(f"{func}() needs an argument", token.column)
            if func in ("len", "has"):
                if token.kind != "word" or not token.text.startswith("["):
                    raise ConditionError(f"{func}() takes a placeholder such as [BODY].items", token.column)
                args.append(_placeholder(self.take()))
            elif token.kind in ("word", "string"):
                args.append(_constant(self.take()))
            else:
                raise ConditionError(f"expected a value, found {_describe(token)}", token.column)
            if self.token.kind == "," and func == "any":
                self.take()
                continue
            self.expect(")", f"a closing ) for {func}(")
            return Call(func, tuple(args), name.column)


def _describe(token: Token) -> str:
    if token.kind == "end":
        return "the end of the condition"
    if token.kind == "string":
        return f'the text "{token.text}"'
    return f"`{token.text}`"


def _observes(operand: Operand) -> bool:
    return isinstance(operand, Placeholder) or (isinstance(operand, Call) and operand.func in ("len", "has"))


def _walk(expr: Expr) -> Iterator[Comparison]:
    if isinstance(expr, Comparison):
        yield expr
    elif isinstance(expr, Not):
        yield from _walk(expr.operand)
    else:
        for item in expr.items:
            yield from _walk(item)


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
        for comparison in _walk(self.expr):
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
    return Condition(text.strip(), _Parser(text).parse())


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
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
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
