"""The syntax of health-check conditions: a tokenizer, the expression tree and a recursive-descent parser.

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

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

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

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
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
    if NUMBER.fullmatch(token.text):
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


class Parser:
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


def walk(expr: Expr) -> Iterator[Comparison]:
    if isinstance(expr, Comparison):
        yield expr
    elif isinstance(expr, Not):
        yield from walk(expr.operand)
    else:
        for item in expr.items:
            yield from walk(item)
