"""Domain errors that the API turns into 4xx JSON answers."""

from __future__ import annotations

from typing import Any


class TocsinError(Exception):
    """Base of every error a service raises on purpose."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message, "field": self.field}
        body.update(self.details)
        return {"error": body}


class InvalidInput(TocsinError):
    status_code = 422
    code = "invalid"


class NotFound(TocsinError):
    status_code = 404
    code = "not_found"


class Conflict(TocsinError):
    status_code = 409
    code = "conflict"


class Unauthorized(TocsinError):
    status_code = 401
    code = "unauthorized"


class Forbidden(TocsinError):
    status_code = 403
    code = "forbidden"
