"""HTML forms into the API's own request models, with errors worded for people."""

from __future__ import annotations

import re
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from starlette.datastructures import FormData

from tocsin.core.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)

_INTEGER = re.compile(r"[+-]?[0-9]{1,9}")
_FLAGS = {"true": True, "on": True, "yes": True, "false": False, "off": False, "no": False}


def values(form: FormData) -> dict[str, list[str]]:
    """The form's text fields, to fill the form in again after an error."""
    out: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str) and key != "csrf_token":
            out.setdefault(key, []).append(value)
    return out


def _label(field: str) -> str:
    return field.replace("_", " ").capitalize()


def _message(error: ErrorDetails) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    label = _label(loc[0]) if loc else "The form"
    kind = error.get("type", "")
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if kind == "missing":
        return f"{label} is required."
    if kind == "string_too_long":
        return f"{label} is too long (at most {ctx.get('max_length')} characters)."
    if kind == "string_too_short":
        return f"{label} is required."
    if kind == "string_pattern_mismatch":
        return f"{label} has characters that are not allowed here."
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return f"{label} must be a whole number."
    if kind in ("less_than_equal", "greater_than_equal"):
        return (
            f"{label} must be between -255 and 255."
            if loc and loc[0] == "exit_code"
            else f"{label} is out of range."
        )
    if kind == "bool_type":
        return f"{label} must be yes or no."
    if kind in ("enum", "literal_error"):
        return f"{label} must be one of the listed options."
    message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    return f"{label}: {message}."


def _typed(annotation: Any, value: str) -> Any:
    """Forms only send text: turn it into the flag or number a (strict) field expects."""
    kinds = typing.get_args(annotation) or (annotation,)
    if bool in kinds:
        return _FLAGS.get(value.strip().lower(), value)
    if int in kinds and _INTEGER.fullmatch(value.strip()):
        return int(value)
    return value


def parse(model: type[M], form: FormData) -> M:
    """Validate the form's fields against `model`; blank fields count as left out.

    Raises InvalidInput (422) with a readable message naming the first bad field.
    """
    data: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if typing.get_origin(field.annotation) is list:
            data[name] = [v for v in form.getlist(name) if isinstance(v, str) and v]
            continue
        value = form.get(name)
        if isinstance(value, str) and value.strip():
            data[name] = _typed(field.annotation, value)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first.get("loc", ())
        raise InvalidInput(_message(first), field=str(loc[0]) if loc else None) from None
