"""Malformed input to the JSON API: a 4xx in our shape naming the field, never a 5xx, nothing written."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tocsin.testing import FakeClock, bearer

INCIDENTS = "/api/v1/incidents"
NOTES = "/api/v1/incidents/INC-1/notes"
TEN_MB = 10 * 1024 * 1024


@pytest.fixture
async def h(client: httpx.AsyncClient, tokens: dict[str, str]) -> dict[str, str]:
    """Admin headers, with INC-1 declared so actions have an incident to (not) change."""
    headers = bearer(tokens["admin"])
    r = await client.post(INCIDENTS, json={"title": "Slow API responses", "severity": "P2"}, headers=headers)
    assert r.status_code == 201, r.text
    return headers


async def state(client: httpx.AsyncClient, h: dict[str, str]) -> tuple[Any, Any]:
    """What a rejected request must leave as it was: the incident list and INC-1's timeline."""
    listing = await client.get(f"{INCIDENTS}?limit=500", headers=h)
    timeline = await client.get("/api/v1/incidents/INC-1/timeline", headers=h)
    assert listing.status_code == timeline.status_code == 200
    return listing.json(), timeline.json()


def error_of(r: httpx.Response, status: int) -> dict[str, Any]:
    """The `error` object of a JSON error answer with this status."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert {"code", "message", "field"} <= set(error)
    assert isinstance(error["message"], str) and error["message"]
    return error


async def rejected(
    client: httpx.AsyncClient,
    h: dict[str, str],
    method: str,
    url: str,
    status: int,
    **kwargs: Any,
) -> dict[str, Any]:
    """Send a request that must be refused with `status`; assert it wrote nothing; return the error."""
    before = await state(client, h)
    headers = {**h, **kwargs.pop("headers", {})}
    error = error_of(await client.request(method, url, headers=headers, **kwargs), status)
    assert await state(client, h) == before
    return error


JSON = {"content-type": "application/json"}
UNPARSABLE = {
    "truncated": (b'{"title": "x", "severity":', JSON),
    "trailing comma": (b'{"title": "x", "severity": "P1",}', JSON),
    "not utf-8": (b'{"title": "\xff\xfe down", "severity": "P1"}', JSON),
    "latin-1": ('{"title": "caf\u00e9 down", "severity": "P1"}'.encode("latin-1"), JSON),
    "nested 10,000 deep": (b"[" * 10_000 + b"]" * 10_000, JSON),
    "nested 10,000 deep in a field": (
        b'{"title": ' + b'{"a": ' * 10_000 + b"1" + b"}" * 10_000 + b', "severity": "P1"}',
        JSON,
    ),
}
NOT_JSON = {
    "text/plain": (json.dumps({"title": "x", "severity": "P1"}).encode(), {"content-type": "text/plain"}),
    "form": (b"title=x&severity=P1", {"content-type": "application/x-www-form-urlencoded"}),
    "no content type": (json.dumps({"title": "x", "severity": "P1"}).encode(), {}),
    "xml": (b"<incident><title>x</title></incident>", {"content-type": "application/xml"}),
}
NOT_AN_OBJECT = {
    "array": b'[{"title": "x", "severity": "P1"}]',
    "string": b'"Application down"',
    "number": b"42",
    "null": b"null",
    "empty": b"",
}


@pytest.mark.parametrize("url", [INCIDENTS, NOTES])
async def test_unparsable_json_is_400_malformed_json(
    client: httpx.AsyncClient, h: dict[str, str], subtests: pytest.Subtests, url: str
) -> None:
    for name, (content, headers) in UNPARSABLE.items():
        with subtests.test(name):
            error = await rejected(client, h, "POST", url, 400, content=content, headers=headers)
            assert error["code"] == "malformed_json" and error["field"] is None


@pytest.mark.parametrize("url", [INCIDENTS, NOTES])
async def test_a_body_that_is_not_json_is_415(
    client: httpx.AsyncClient, h: dict[str, str], subtests: pytest.Subtests, url: str
) -> None:
    for name, (content, headers) in NOT_JSON.items():
        with subtests.test(name):
            error = await rejected(client, h, "POST", url, 415, content=content, headers=headers)
            assert error["code"] == "unsupported_media_type"
            assert "application/json" in error["message"]


@pytest.mark.parametrize("url", [INCIDENTS, NOTES])
async def test_json_that_is_not_an_object_is_422(
    client: httpx.AsyncClient, h: dict[str, str], subtests: pytest.Subtests, url: str
) -> None:
    for name, content in NOT_AN_OBJECT.items():
        with subtests.test(name):
            error = await rejected(client, h, "POST", url, 422, content=content, headers=JSON)
            assert error["code"] == "invalid" and error["field"] is None
            assert "JSON object" in error["message"]


def _detected(clock: FakeClock, **delta: float) -> str:
    return (clock.now() + timedelta(**delta)).isoformat()


# (fields merged over a valid declaration, or None to drop a field; the field the error must name)
BAD_DECLARATIONS: dict[str, tuple[dict[str, Any], str]] = {
    "title of the wrong type": ({"title": 5}, "title"),
    "severity of the wrong type": ({"severity": ["P1"]}, "severity"),
    "severity P9": ({"severity": "P9"}, "severity"),
    "severity X": ({"severity": "X"}, "severity"),
    "severity p1": ({"severity": "p1"}, "severity"),
    "unknown component": ({"components": ["nope"]}, "components.0"),
    "unknown second component": ({"components": ["api", "nope"]}, "components.1"),
    "component of the wrong type": ({"components": "api"}, "components"),
    "unknown service": ({"services": ["nope"]}, "services.0"),
    "unknown key": ({"priority": "high"}, "priority"),
    "missing title": ({"title": None}, "title"),
    "missing severity": ({"severity": None}, "severity"),
    "title of 100,000 characters": ({"title": "a" * 100_000}, "title"),
    "title of 201 characters": ({"title": "a" * 201}, "title"),
    "blank title": ({"title": "   "}, "title"),
    "NUL in title": ({"title": "API\x00 down"}, "title"),
    "bell in title": ({"title": "API \x07down"}, "title"),
    "escape sequence in title": ({"title": "\x1b[31mAPI down"}, "title"),
    "newline in title": ({"title": "API down\nreally"}, "title"),
    "C1 control in title": ({"title": "API\x85down"}, "title"),
    "line separator in title": ({"title": "API\u2028down"}, "title"),
    "NUL in description": ({"description": "bad\x00"}, "description"),
    "customer_facing as a string": ({"customer_facing": "yes"}, "customer_facing"),
    "customer_facing as a number": ({"customer_facing": 0}, "customer_facing"),
    "source unknown": ({"source": "carrier-pigeon"}, "source"),
    "commander with markup": ({"commander": "<b>ada</b>"}, "commander"),
    "detected_at not a date": ({"detected_at": "yesterday"}, "detected_at"),
    "detected_at as Unix seconds": ({"detected_at": 1_795_000_000}, "detected_at"),
}


async def test_bad_declarations_are_422_naming_the_field(
    client: httpx.AsyncClient, h: dict[str, str], subtests: pytest.Subtests
) -> None:
    for name, (changes, field) in BAD_DECLARATIONS.items():
        with subtests.test(name):
            body = {
                "title": "Application completely down",
                "severity": "P1",
                "components": ["api"],
                **changes,
            }
            body = {k: v for k, v in body.items() if v is not None}
            error = await rejected(client, h, "POST", INCIDENTS, 422, json=body)
            assert error["code"] == "invalid"
            assert error["field"] == field, error


async def test_detected_at_without_a_time_zone_or_out_of_range_is_422(
    client: httpx.AsyncClient, h: dict[str, str], clock: FakeClock, subtests: pytest.Subtests
) -> None:
    naive = (clock.now() - timedelta(minutes=5)).replace(tzinfo=None).isoformat()
    cases = {
        "no time zone": naive,
        "tomorrow": _detected(clock, days=1),
        "in ten minutes": _detected(clock, minutes=10),
        "a year ago": _detected(clock, days=-365),
        "31 days ago": _detected(clock, days=-31),
        "year 1": "0001-01-01T00:00:00+05:00",
        "year 9999": "9999-12-31T23:59:59-05:00",
    }
    for name, detected_at in cases.items():
        with subtests.test(name):
            body = {"title": "API down", "severity": "P1", "detected_at": detected_at}
            error = await rejected(client, h, "POST", INCIDENTS, 422, json=body)
            assert error["field"] == "detected_at"
    with subtests.test("the message says what is missing"):
        body = {"title": "API down", "severity": "P1", "detected_at": naive}
        error = await rejected(client, h, "POST", INCIDENTS, 422, json=body)
        assert "time zone" in error["message"]


async def test_detected_at_within_the_window_is_accepted(
    client: httpx.AsyncClient, h: dict[str, str], clock: FakeClock
) -> None:
    body = {"title": "API down", "severity": "P1", "detected_at": _detected(clock, days=-2)}
    r = await client.post(INCIDENTS, json=body, headers=h)
    assert r.status_code == 201, r.text


async def test_markup_in_a_title_is_stored_and_returned_verbatim(
    client: httpx.AsyncClient, h: dict[str, str]
) -> None:
    title = "<script>alert('x')</script> & <img src=x onerror=alert(1)> \"quoted\""
    r = await client.post(INCIDENTS, json={"title": title, "severity": "P2"}, headers=h)
    assert r.status_code == 201, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["title"] == title
    assert "&lt;" not in r.text and "&amp;" not in r.text  # escaping is the console's job, not the API's
    shown = await client.get(f"{INCIDENTS}/{r.json()['id']}", headers=h)
    assert shown.json()["title"] == title
    timeline = await client.get(f"{INCIDENTS}/{r.json()['id']}/timeline", headers=h)
    assert timeline.json()[0]["data"]["title"] == title


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        chunk = b" " * min(size, total - sent)
        sent += len(chunk)
        yield chunk


@pytest.mark.parametrize("url", [INCIDENTS, NOTES])
async def test_ten_megabytes_with_content_length_is_413(
    client: httpx.AsyncClient, h: dict[str, str], url: str
) -> None:
    body = b'{"title": "' + b"a" * TEN_MB + b'", "severity": "P1"}'
    error = await rejected(client, h, "POST", url, 413, content=body, headers=JSON)
    assert error["code"] == "too_large" and error["field"] is None


@pytest.mark.parametrize("url", [INCIDENTS, NOTES])
async def test_ten_megabytes_streamed_without_content_length_is_413(
    client: httpx.AsyncClient, h: dict[str, str], url: str
) -> None:
    before = await state(client, h)
    request = client.build_request("POST", url, content=_chunks(TEN_MB), headers={**h, **JSON})
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    error = error_of(await client.send(request), 413)
    assert error["code"] == "too_large"
    assert await state(client, h) == before


async def test_a_bad_or_lying_content_length_is_refused(client: httpx.AsyncClient, h: dict[str, str]) -> None:
    error = await rejected(
        client, h, "POST", NOTES, 400, content=b'{"text": "x"}', headers={"content-length": "ten"}
    )
    assert error["code"] == "bad_request"
    # Announcing a small body and streaming a large one: what arrives counts, not what was announced.
    body = b'{"text": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    error = await rejected(
        client, h, "POST", NOTES, 413, content=body, headers={**JSON, "content-length": "20"}
    )
    assert error["code"] == "too_large"


async def test_a_body_just_under_the_limit_is_parsed(client: httpx.AsyncClient, h: dict[str, str]) -> None:
    # Whitespace pads the body to just under the 1 MiB default: the limit, not the size, decides.
    body = b'{"text": "fits"}' + b" " * (1024 * 1024 - 100)
    r = await client.post(NOTES, content=body, headers={**h, **JSON})
    assert r.status_code == 201, r.text


BAD_EVENTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "NUL in a note": ("notes", {"text": "rolled back\x00"}, "text"),
    "escape sequence in a note": ("notes", {"text": "\x1b]0;pwned\x07"}, "text"),
    "empty note": ("notes", {"text": ""}, "text"),
    "note of the wrong type": ("notes", {"text": ["a"]}, "text"),
    "exit_code far too big": ("commands", {"command": "ls", "exit_code": 10**30}, "exit_code"),
    "exit_code past 64 bits": ("commands", {"command": "ls", "exit_code": 2**63}, "exit_code"),
    "exit_code 256": ("commands", {"command": "ls", "exit_code": 256}, "exit_code"),
    "exit_code as a string": ("commands", {"command": "ls", "exit_code": "1"}, "exit_code"),
    "exit_code as a boolean": ("commands", {"command": "ls", "exit_code": True}, "exit_code"),
    "exit_code as a float": ("commands", {"command": "ls", "exit_code": 1.5}, "exit_code"),
    "control character in a command": ("commands", {"command": "rm\x00 -rf"}, "command"),
    "unknown status": ("status", {"status": "bogus"}, "status"),
    "unknown severity P9": ("severity", {"severity": "P9", "reason": "worse"}, "severity"),
    "unknown role": ("roles", {"role": "king", "person": "ada"}, "role"),
    "person with markup": ("roles", {"role": "scribe", "person": "<ada>"}, "person"),
    "unknown key in a note": ("notes", {"text": "x", "pinned": True}, "pinned"),
    "hypothesis state unknown": ("hypotheses/{hypothesis}", {"state": "maybe"}, "state"),
}


async def test_bad_actions_are_422_and_leave_the_timeline_alone(
    client: httpx.AsyncClient, h: dict[str, str], subtests: pytest.Subtests
) -> None:
    r = await client.post(f"{INCIDENTS}/INC-1/hypotheses", json={"text": "bad deploy"}, headers=h)
    assert r.status_code == 201, r.text
    hypothesis = r.json()["data"]["hypothesis"]
    for name, (action, body, field) in BAD_EVENTS.items():
        with subtests.test(name):
            action = action.format(hypothesis=hypothesis)
            error = await rejected(client, h, "POST", f"{INCIDENTS}/INC-1/{action}", 422, json=body)
            assert error["field"] == field, error


BAD_REFS = [
    "abc",
    "INC-abc",
    "INC-99999999999999999999",
    "INC-99999999999",  # 11 digits: past a 32-bit id
    "INC-2147483648",
    "INC-\u00b2",  # isdigit() but not int()
    "INC-\u0661",  # an Arabic-Indic 1
    "INC--1",
    "INC-1.5",
]


async def test_invalid_incident_refs_are_404_naming_the_ref(
    client: httpx.AsyncClient, h: dict[str, str], subtests: pytest.Subtests
) -> None:
    for ref in BAD_REFS:
        with subtests.test(ref):
            error = error_of(await client.get(f"{INCIDENTS}/{ref}", headers=h), 404)
            assert error["code"] == "not_found" and error["field"] == "ref"
            error = await rejected(client, h, "POST", f"{INCIDENTS}/{ref}/notes", 404, json={"text": "x"})
            assert error["field"] == "ref"


async def test_well_formed_refs_to_missing_incidents_are_404(
    client: httpx.AsyncClient, h: dict[str, str]
) -> None:
    for ref in ("INC-0", "INC-2", "999999999", "inc-2"):
        error = error_of(await client.get(f"{INCIDENTS}/{ref}", headers=h), 404)
        assert error["code"] == "not_found" and error["field"] == "id"


async def test_invalid_hypothesis_ids_are_404(
    client: httpx.AsyncClient, h: dict[str, str], subtests: pytest.Subtests
) -> None:
    for hypothesis in ["2147483648", "99999999999999999999", "0", "-1", "x", "1"]:  # 1: none proposed yet
        with subtests.test(hypothesis):
            url = f"{INCIDENTS}/INC-1/hypotheses/{hypothesis}"
            error = await rejected(client, h, "POST", url, 404, json={"state": "confirmed"})
            assert error["field"] == "hypothesis"


LISTING_QUERIES = dict(
    [
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("limit=99999999999999999999999", "limit"),
        ("offset=-1", "offset"),
        ("offset=1e3", "offset"),
        ("status=bogus", "status.0"),
        ("status=open&status=bogus", "status.0"),
        ("severity=bogus", "severity.0"),
        ("severity=P1%00", "severity.0"),
        ("open=perhaps", "open"),
    ]
)
TIMELINE_QUERIES = {
    "after=-1": "after",
    "after=2147483648": "after",
    "limit=0": "limit",
    "limit=1001": "limit",
}


async def test_query_parameters_out_of_range_are_422_naming_them(
    client: httpx.AsyncClient, h: dict[str, str], subtests: pytest.Subtests
) -> None:
    cases = {f"{INCIDENTS}?{q}": field for q, field in LISTING_QUERIES.items()}
    cases |= {f"{INCIDENTS}/INC-1/timeline?{q}": field for q, field in TIMELINE_QUERIES.items()}
    for url, field in cases.items():
        with subtests.test(url):
            error = error_of(await client.get(url, headers=h), 422)
            assert error["code"] == "invalid" and error["field"] == field, error


async def test_unknown_routes_are_404_and_wrong_methods_405_in_our_shape(
    client: httpx.AsyncClient, h: dict[str, str], subtests: pytest.Subtests
) -> None:
    for path in ["/api/v1/nope", "/api/v1/incidents/INC-1/nope", "/api/v2/nope", "/nope"]:
        with subtests.test(f"GET {path}"):
            error = await rejected(client, h, "GET", path, 404)
            assert error["code"] == "not_found"
    wrong = [
        ("DELETE", INCIDENTS, {"GET", "POST"}),
        ("PUT", f"{INCIDENTS}/INC-1", {"GET"}),
        ("GET", f"{INCIDENTS}/INC-1/acknowledge", {"POST"}),
        ("POST", "/api/health", {"GET"}),
    ]
    for method, path, allowed in wrong:
        with subtests.test(f"{method} {path}"):
            r = await client.request(method, path, headers=h, json={})
            error = error_of(r, 405)
            assert error["code"] == "method_not_allowed"
            assert {m.strip() for m in r.headers["allow"].split(",")} == allowed


BAD_USERS: dict[str, tuple[str, dict[str, Any], str]] = {
    "NUL in a display name": ("/api/v1/users", {"name": "ada", "display_name": "Ada\x00"}, "display_name"),
    "NUL in an email": ("/api/v1/users", {"name": "ada", "email": "ada\x00@example.com"}, "email"),
    "upper-case login name": ("/api/v1/users", {"name": "Ada"}, "name"),
    "unknown role": ("/api/v1/users", {"name": "ada", "role": "root"}, "role"),
    "short password": ("/api/v1/users", {"name": "ada", "password": "short"}, "password"),
    "NUL in a token name": ("/api/v1/tokens", {"name": "ci\x00"}, "name"),
    "NUL in a token's user": ("/api/v1/tokens", {"user": "ada\x00"}, "user"),
}


async def test_bad_users_and_tokens_are_422(
    client: httpx.AsyncClient, h: dict[str, str], subtests: pytest.Subtests
) -> None:
    users = (await client.get("/api/v1/users", headers=h)).json()
    for name, (url, body, field) in BAD_USERS.items():
        with subtests.test(name):
            error = error_of(await client.post(url, json=body, headers=h), 422)
            assert error["field"] == field
            assert (await client.get("/api/v1/users", headers=h)).json() == users
