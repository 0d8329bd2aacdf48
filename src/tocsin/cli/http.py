"""The CLI's way to the Tocsin API: one client per command, every failure turned into one line."""

from __future__ import annotations

import json
import re
import sys
from typing import Annotated, Any, NoReturn

import httpx
import typer

from tocsin import __version__

DEFAULT_URL = "http://127.0.0.1:8080"

# Exit codes, documented in every client command's help.
API_ERROR = 1
USAGE_ERROR = 2
CONNECTION_ERROR = 3
EXIT_CODES = "Exit codes: 0 done, 1 API error (refused, not found, conflict, invalid), 2 usage error, 3 cannot reach Tocsin."

_CONNECTION = "Connection"
# Read by Typer when a command runs, never at import time.
Url = Annotated[
    str,
    typer.Option("--url", envvar="TOCSIN_URL", help="Tocsin's base URL.", rich_help_panel=_CONNECTION),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="TOCSIN_TOKEN", help="API token (tocsin token create).", rich_help_panel=_CONNECTION
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print the API's JSON and nothing else.")]


def fail(message: str, code: int = API_ERROR) -> NoReturn:
    """Print one line on stderr and exit with `code`."""
    # Plain print: Rich would wrap a long message over several lines.
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    raise typer.Exit(code)


def emit_json(data: object) -> None:
    """The API's JSON on stdout, for jq."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def said(row: Any, as_json: bool, line: str) -> None:
    """What a command did: the API's answer with --json, else one line."""
    if as_json:
        emit_json(row)
    else:
        typer.echo(line)


def error_message(response: httpx.Response) -> str:
    """One line saying what the API refused and why, from its `{"error": {...}}` body."""
    status = response.status_code
    try:
        body = response.json()
        error: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else {}
    except (ValueError, AttributeError):
        error = {}
    message = str(error.get("message") or "") or _first_line(response.text) or response.reason_phrase
    field = error.get("field")
    if status == 401:
        return (
            f"the token was refused ({message}); set TOCSIN_TOKEN or pass --token "
            "with a valid API token (tocsin token create)"
        )
    if status == 409 and isinstance(error.get("allowed"), list) and "allowed:" not in message:
        allowed = ", ".join(str(s) for s in error["allowed"]) or "none"
        return f"{message}; allowed: {allowed}"
    if status == 422 and field and not message.startswith(f"{field}:"):
        return f"{field}: {message}"
    if status >= 500:
        return f"the server failed (HTTP {status}): {message}"
    if status in (403, 404, 409, 422):
        return message
    return f"HTTP {status}: {message}"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else ""


def _connection_problem(url: str, exc: httpx.TransportError) -> str:
    text = str(exc)
    if isinstance(exc, httpx.TimeoutException):
        reason = "timed out"
    elif re.search(r"refused", text, re.IGNORECASE):
        reason = "connection refused"
    elif re.search(r"name or service|nodename|getaddrinfo|name resolution", text, re.IGNORECASE):
        return f"cannot reach Tocsin at {url}: unknown host; check TOCSIN_URL or --url"
    else:
        reason = text or type(exc).__name__
    return f"cannot reach Tocsin at {url}: {reason}; is it running? (TOCSIN_URL)"


class Api:
    """A synchronous client for one command: base URL, bearer token, errors as exits."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        if not re.match(r"^https?://[^/\s]+", self.url):
            fail(f"{url!r} is not an http(s) URL (TOCSIN_URL or --url)", USAGE_ERROR)
        if not token:
            fail("no API token; set TOCSIN_TOKEN or pass --token (tocsin token create)", USAGE_ERROR)
        self._timeout = timeout
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": f"tocsin-cli/{__version__}",
        }

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._send("GET", path, params=params)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._send("POST", path, json=body if body is not None else {})

    def delete(self, path: str) -> Any:
        return self._send("DELETE", path)

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            with httpx.Client(base_url=self.url, timeout=self._timeout, headers=self._headers) as client:
                response = client.request(method, path, **kwargs)
        except httpx.InvalidURL as exc:
            fail(f"{self.url!r} is not a usable URL: {exc}", USAGE_ERROR)
        except httpx.TransportError as exc:
            fail(_connection_problem(self.url, exc), CONNECTION_ERROR)
        if response.is_error:
            fail(error_message(response))
        try:
            return response.json()
        except ValueError:
            fail(f"the server at {self.url} did not answer JSON (HTTP {response.status_code}); is it Tocsin?")


def connect(url: str, token: str | None) -> Api:
    """The API client for one command, from --url/--token or TOCSIN_URL/TOCSIN_TOKEN."""
    return Api(url, token)


def incident_ref(ref: str) -> str:
    """`INC-42` from `INC-42`, `inc-42` or `42`; a usage error otherwise."""
    match = re.fullmatch(r"(?:inc-)?(\d{1,11})", ref.strip(), re.IGNORECASE)
    if match is None:
        fail(f"{ref!r} is not an incident id (INC-42 or 42)", USAGE_ERROR)
    return f"INC-{int(match.group(1))}"


def incident_path(ref: str) -> str:
    """`/api/v1/incidents/INC-42`, from any spelling `incident_ref` accepts."""
    return f"/api/v1/incidents/{incident_ref(ref)}"
