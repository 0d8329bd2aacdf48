"""Load a policy file, reporting every problem at once with its file, line and field."""

from __future__ import annotations

import difflib
import functools
import types
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from tocsin.policy.models import Policy

_DEFAULT_POLICY = "default.yaml"

FieldPath = tuple[str, ...]


@dataclass(frozen=True)
class PolicyIssue:
    """One problem in a policy file; str() gives ``file:line field: message``."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where} {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class PolicyError(Exception):
    """A policy file that cannot be used; ``issues`` lists every problem found."""

    def __init__(self, issues: list[PolicyIssue]) -> None:
        super().__init__("\n".join(str(issue) for issue in issues))
        self.issues = issues


class _PolicyYamlLoader(yaml.SafeLoader):
    """SafeLoader that leaves values with a colon or impossible dates as text for pydantic to judge."""

    # YAML 1.1 reads 17:00 as the base-60 integer 1020; nobody writing a policy means that.
    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        if ":" in str(node.value):
            return self.construct_scalar(node)
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> Any:
        if ":" in str(node.value):
            return self.construct_scalar(node)
        return super().construct_yaml_float(node)

    # 2026-02-30 matches the timestamp pattern and would crash construction; as text it becomes a
    # validation error with a line number like any other.
    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)


_PolicyYamlLoader.add_constructor("tag:yaml.org,2002:int", _PolicyYamlLoader.construct_yaml_int)
_PolicyYamlLoader.add_constructor("tag:yaml.org,2002:float", _PolicyYamlLoader.construct_yaml_float)
_PolicyYamlLoader.add_constructor("tag:yaml.org,2002:timestamp", _PolicyYamlLoader.construct_yaml_timestamp)


def load_policy(path: Path) -> Policy:
    """Load and validate the policy file at path; raise PolicyError listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError([PolicyIssue(str(path), None, "", "file not found")]) from None
    except UnicodeDecodeError:
        raise PolicyError([PolicyIssue(str(path), None, "", "not UTF-8 text")]) from None
    except OSError as error:
        raise PolicyError([PolicyIssue(str(path), None, "", error.strerror or str(error))]) from None
    return load_policy_text(text, str(path))


def load_policy_text(text: str, filename: str) -> Policy:
    """Validate policy YAML text; filename is used in error messages only."""
    try:
        root, data, issues = _parse(text, filename)
    except yaml.YAMLError as error:
        raise PolicyError([_syntax_issue(error, text, filename)]) from None
    if root is None:
        raise PolicyError([PolicyIssue(filename, None, "", "the policy file is empty")])
    if not isinstance(data, dict):
        line = root.start_mark.line + 1
        raise PolicyError([PolicyIssue(filename, line, "", "expected a mapping of policy sections")])
    lines: dict[FieldPath, int] = {}
    _record_lines(root, (), lines, set())
    try:
        policy = Policy.model_validate(data)
    except ValidationError as error:
        issues += [_validation_issue(detail, lines, filename) for detail in error.errors()]
    if issues:
        raise PolicyError(sorted(issues, key=lambda issue: (issue.line or 0, issue.field)))
    return policy


@functools.cache
def default_policy() -> Policy:
    """The built-in policy: the seed runbook (src/tocsin/policy/default.yaml)."""
    text = resources.files("tocsin.policy").joinpath(_DEFAULT_POLICY).read_text(encoding="utf-8")
    return load_policy_text(text, f"tocsin/policy/{_DEFAULT_POLICY}")


def _parse(text: str, filename: str) -> tuple[yaml.Node | None, Any, list[PolicyIssue]]:
    """Compose and construct the YAML document; also return its duplicate-key issues."""
    loader = _PolicyYamlLoader(text)  # checks for unprintable characters, so inside the caller's try
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None, []
        issues = _duplicate_keys(root, filename)  # before construction flattens merge keys (<<)
        return root, loader.construct_document(root), issues
    finally:
        loader.dispose()


def _syntax_issue(error: yaml.YAMLError, text: str, filename: str) -> PolicyIssue:
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        context = f" ({error.context})" if error.context else ""
        line = mark.line + 1 if mark is not None else None
        return PolicyIssue(filename, line, "", f"invalid YAML: {error.problem}{context}")
    if isinstance(error, yaml.reader.ReaderError):
        line = text[: error.position].count("\n") + 1
        return PolicyIssue(filename, line, "", f"invalid YAML: {error.reason}")
    return PolicyIssue(filename, None, "", f"invalid YAML: {error}")


def _duplicate_keys(node: yaml.Node, filename: str) -> list[PolicyIssue]:
    # PyYAML silently keeps the last of two equal keys; in a policy that hides a mistake.
    issues: list[PolicyIssue] = []
    stack, seen_nodes = [node], set()
    while stack:
        current = stack.pop()
        if id(current) in seen_nodes:
            continue
        seen_nodes.add(id(current))
        if isinstance(current, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in current.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    if key_node.value in keys:
                        line = key_node.start_mark.line + 1
                        issues.append(PolicyIssue(filename, line, str(key_node.value), "duplicate key"))
                    keys.add(key_node.value)
                stack.append(value_node)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
    return issues


def _record_lines(node: yaml.Node, path: FieldPath, lines: dict[FieldPath, int], active: set[int]) -> None:
    """Record the 1-based line of every mapping key and sequence item, by field path."""
    lines.setdefault(path, node.start_mark.line + 1)
    if id(node) in active:  # an alias that refers back to its own anchor
        return
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        # After construction merge keys (<<) are flattened in, so merged fields have lines too.
        for key_node, value_node in node.value:
            child = (*path, str(key_node.value))
            lines[child] = key_node.start_mark.line + 1
            _record_lines(value_node, child, lines, active)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, (*path, str(index)), lines, active)
    active.discard(id(node))


def _validation_issue(detail: ErrorDetails, lines: dict[FieldPath, int], filename: str) -> PolicyIssue:
    # Pydantic marks errors in dict keys with a "[key]" step; the key itself already names the place.
    path = tuple(str(part) for part in detail["loc"] if part != "[key]")
    written = path
    while written not in lines:
        written = written[:-1]
    # A missing key is named in full; any other error is placed at the deepest field the author wrote,
    # since a deeper one (such as a severity's key, taken from its mapping key) was not in the file.
    field = path if detail["type"] == "missing" else written
    return PolicyIssue(filename, lines[written], ".".join(field), _message(detail, path))


def _message(detail: ErrorDetails, path: FieldPath) -> str:
    if detail["type"] == "extra_forbidden":
        allowed = _allowed_keys(path[:-1])
        close = difflib.get_close_matches(path[-1], allowed, n=1)
        if close:
            return f'unknown key; did you mean "{close[0]}"?'
        return f"unknown key; expected one of: {', '.join(allowed)}" if allowed else "unknown key"
    if detail["type"] == "missing":
        return "required key is missing"
    if detail["type"] == "value_error":
        return str(detail.get("ctx", {}).get("error", detail["msg"]))
    return detail["msg"]


def _allowed_keys(path: FieldPath) -> list[str]:
    """The field names of the model found at path inside Policy, or [] if there is none."""
    current: Any = Policy
    for part in path:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            current = field.annotation if field is not None else None
        else:
            args = typing.get_args(current)  # list[X] -> (X,); dict[K, V] -> (K, V)
            current = args[-1] if args else None
        current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated and Optional from an annotation."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        annotation = members[0] if len(members) == 1 else annotation
    return annotation
