"""Every error answers JSON `{"error": {"code", "message", "field"}}`; malformed input is never a 5xx."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import exc as db_errors
from starlette.exceptions import HTTPException
from starlette.routing import Match

from tocsin.core.errors import TocsinError

log = logging.getLogger("tocsin")

_LOCATIONS = ("body", "query", "path", "header", "cookie")
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}
_FASTAPI_PARSE_FAILURE = "There was an error parsing the body"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_REF = "#/components/schemas/"
_PROBED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
_NOT_AN_OBJECT = ("model_attributes_type", "dict_type", "model_type")


class ErrorDetail(BaseModel):
    """What went wrong; some errors add fields (409: `current`, `allowed`; 422: `errors`)."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(examples=["invalid"])
    message: str
    field: str | None = Field(
        description="the offending field, dotted (`components.0`); null for the whole request"
    )


class ErrorBody(BaseModel):
    """The body of every 4xx and 5xx answer of the JSON API."""

    error: ErrorDetail


_DESCRIPTIONS = {
    400: "malformed JSON or an unreadable body",
    401: "no, or an invalid, API token",
    403: "the token's role is too low",
    404: "no such resource",
    409: "not allowed in the resource's current state",
    413: "the body is too large",
    415: "the body is not JSON (send Content-Type: application/json)",
    422: "invalid input; `field` names the offending field",
    503: "the database cannot be reached",
}


def responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting these error statuses with the ErrorBody model."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in status_codes}


# What any authenticated JSON route may answer besides its success (document_errors adds these
# to every operation anyway; declaring them on a router is harmless).
API_ERRORS = responses(400, 401, 403, 413, 415, 422, 503)


def field_name(loc: Sequence[Any]) -> str | None:
    """`("body", "services", 0)` -> `services.0`; None for the body as a whole."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in _LOCATIONS:
        parts = parts[1:]
    return ".".join(parts) or None


def error_body(code: str, message: str, field: str | None, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field, **extra}}


async def _tocsin_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TocsinError)
    return JSONResponse(exc.to_dict(), status_code=exc.status_code)


def _whole_body_message(error: dict[str, Any]) -> str | None:
    """A clearer message for errors about the body as a whole (not one field)."""
    if tuple(error.get("loc", ())) != ("body",):
        return None
    if error.get("type") == "missing":
        return "a JSON object body is required"
    if error.get("type") in _NOT_AN_OBJECT:
        return "the body must be a JSON object"
    return None


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse(error_body("malformed_json", "the body is not valid JSON", None), status_code=400)
    if any(tuple(e.get("loc", ())) == ("body",) and isinstance(e.get("input"), bytes) for e in errors):
        # FastAPI only parses JSON bodies; any other content type reaches validation as raw bytes.
        sent = request.headers.get("content-type")
        message = "send JSON with Content-Type: application/json" + (f", not {sent}" if sent else "")
        return JSONResponse(error_body("unsupported_media_type", message, None), status_code=415)
    details = [
        {
            "field": field_name(e.get("loc", ())),
            "message": _whole_body_message(e) or str(e.get("msg", "invalid")).removeprefix("Value error, "),
        }
        for e in errors
    ]
    first = details[0] if details else {"field": None, "message": "invalid request"}
    message = f"{first['field']}: {first['message']}" if first["field"] else str(first["message"])
    if errors and all(e.get("loc", ("",))[0] == "path" for e in errors):
        # A URL whose parameters cannot name anything names nothing: not found, like an unknown id.
        return JSONResponse(error_body("not_found", message, first["field"]), status_code=404)
    return JSONResponse(error_body("invalid", message, first["field"], errors=details), status_code=422)


def _unparsable_body(exc: HTTPException) -> str | None:
    """Why FastAPI could not parse a body (it answers a bare 400 and keeps the cause)."""
    cause = exc.__cause__
    if exc.status_code != 400 or cause is None or exc.detail != _FASTAPI_PARSE_FAILURE:
        return None
    if isinstance(cause, RecursionError):
        return "the body is not valid JSON: nested too deeply"
    if isinstance(cause, UnicodeError):
        return "the body is not valid JSON: not UTF-8"
    return "the body could not be read as JSON"


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    unparsable = _unparsable_body(exc)
    if unparsable:
        return JSONResponse(error_body("malformed_json", unparsable, None), status_code=400)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return JSONResponse(error_body(code, str(exc.detail), None), status_code=exc.status_code, headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method some route takes at this path (Starlette names only the first route's)."""
    allowed = []
    for method in _PROBED_METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Unreachable, locked or overloaded: the request may succeed later, so 503 rather than a bare 500.
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        error_body("unavailable", "the database cannot be reached; try again", None),
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("internal", "internal error; see the server log", None), status_code=500)


def _error_response(status_code: int) -> dict[str, Any]:
    schema = {"$ref": f"{_REF}ErrorBody"}
    return {"description": _DESCRIPTIONS[status_code], "content": {"application/json": {"schema": schema}}}


def document_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """Add to an OpenAPI document the errors the app-wide handlers give any operation.

    The body limit (413) and the database (503) apply to every route; malformed or non-JSON
    bodies (400, 415) to those with a body; 401 and 403 to those with a security requirement;
    404 to those with path parameters; 422 is our ErrorBody, not FastAPI's HTTPValidationError.
    Routes declare the rest (a 404 or 409 from the domain) themselves with `responses()`.
    """
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    body = ErrorBody.model_json_schema(ref_template=_REF + "{model}")
    schemas.update(body.pop("$defs", {}))
    schemas["ErrorBody"] = body
    for item in spec.get("paths", {}).values():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            statuses = [413, 503]
            if "requestBody" in operation:
                statuses += [400, 415, 422]
            if operation.get("security"):
                statuses += [401, 403]
            parameters = operation.get("parameters", [])
            if parameters:
                statuses.append(422)
            if any(p.get("in") == "path" for p in parameters):
                statuses.append(404)  # a malformed path parameter names nothing
            for status in statuses:
                responses.setdefault(str(status), _error_response(status))
            validation = responses.get("422", {}).get("content", {}).get("application/json", {})
            if validation.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                responses["422"] = _error_response(422)
    return spec


def install(app: FastAPI) -> None:
    """Answer every error in our shape, and say so in the app's OpenAPI document."""
    make_spec = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(make_spec())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_exception_handler(TocsinError, _tocsin_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(db_errors.OperationalError, _database_unavailable)
    app.add_exception_handler(db_errors.TimeoutError, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)
