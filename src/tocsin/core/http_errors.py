"""Every error answers JSON `{"error": {"code", "message", "field"}}`; malformed input is never a 5xx."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from tocsin.core.errors import TocsinError

log = logging.getLogger("tocsin")

_LOCATIONS = ("body", "query", "path", "header", "cookie")


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


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse(error_body("malformed_json", "the body is not valid JSON", None), status_code=400)
    details = [{"field": field_name(e.get("loc", ())), "message": str(e.get("msg", "invalid"))} for e in errors]
    first = details[0] if details else {"field": None, "message": "invalid request"}
    message = f"{first['field']}: {first['message']}" if first["field"] else str(first["message"])
    return JSONResponse(error_body("invalid", message, first["field"], errors=details), status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}.get(
        exc.status_code, f"http_{exc.status_code}"
    )
    return JSONResponse(
        error_body(code, str(exc.detail), None), status_code=exc.status_code, headers=getattr(exc, "headers", None)
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("internal", "internal error; see the server log", None), status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(TocsinError, _tocsin_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
