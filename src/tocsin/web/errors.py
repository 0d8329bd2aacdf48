"""Console errors answer as pages: no session sends you to /login, others show a readable message."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from tocsin.web.render import Console


class LoginRequired(Exception):
    """No live web session: the page redirects to the sign-in form, then back to `next`."""

    def __init__(self, next_path: str = "/") -> None:
        super().__init__("sign in required")
        self.next_path = next_path


class PageError(Exception):
    """An error shown as an HTML page (403 wrong CSRF token or role, 404 no such incident)."""

    def __init__(self, status_code: int, title: str, message: str, who: object = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.title = title
        self.message = message
        self.who = who  # the signed-in user, when known, for the page's header


def row_number(text: str, what: str, who: object) -> int:
    """The number of a row (a silence, an override, a report) from a console URL; a 404 page
    naming `what` when the text is not one."""
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise PageError(404, f"No such {what}", f"{text!r} is not {_article(what)} {what} number", who=who)
    return int(text)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def safe_next(path: str | None) -> str:
    """A local path to return to after signing in; anything else (other hosts, schemes) becomes `/`."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def login_url(next_path: str) -> str:
    next_path = safe_next(next_path)
    return "/login" if next_path == "/" else f"/login?next={quote(next_path, safe='/')}"


def install(app: FastAPI, console: Console) -> None:
    async def login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        return RedirectResponse(login_url(exc.next_path), status_code=303)

    async def page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        return console.page(
            "error.html", status_code=exc.status_code, title=exc.title, message=exc.message, who=exc.who
        )

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(PageError, page_error)
