"""Revoking API tokens and disabling users: refused from the next request on, on both databases."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from tocsin.app import create_app
from tocsin.auth import service
from tocsin.auth.roles import Role
from tocsin.core.errors import Conflict
from tocsin.runtime import Runtime
from tocsin.testing import FakeClock, bearer, user_with_token

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
TOKEN_FIELDS = {"id", "name", "user", "created_at", "last_used_at", "revoked_at"}


@pytest.fixture
async def browser(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """A second client, with its own cookies, for the console."""
    transport = httpx.ASGITransport(app=create_app(runtime=rt))
    async with httpx.AsyncClient(transport=transport, base_url="http://tocsin.test") as c:
        yield c


async def sign_in(browser: httpx.AsyncClient, name: str) -> None:
    form = await browser.get("/login")
    match = CSRF.search(form.text)
    assert match, form.text
    data = {"name": name, "password": PASSWORD, "csrf_token": match[1], "next": "/"}
    assert (await browser.post("/login", data=data)).status_code == 303
    assert (await browser.get("/")).status_code == 200


async def test_list_shows_own_tokens_or_everyones_and_never_a_secret(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    viewer, admin = bearer(tokens["viewer"]), bearer(tokens["admin"])
    laptop = (await client.post("/api/v1/tokens", json={"name": "laptop"}, headers=viewer)).json()["token"]

    r = await client.get("/api/v1/tokens", headers=viewer)
    assert r.status_code == 200, r.text
    own = r.json()
    assert [(t["name"], t["user"]) for t in own] == [("test", "viewer-user"), ("laptop", "viewer-user")]
    assert all(set(t) == TOKEN_FIELDS and t["revoked_at"] is None for t in own)
    assert laptop not in r.text and tokens["viewer"] not in r.text

    r = await client.get("/api/v1/tokens", params={"all": "true"}, headers=admin)
    everyone = r.json()
    assert {t["user"] for t in everyone} == {f"{role.name}-user" for role in Role}
    assert not any(secret in r.text for secret in [laptop, *tokens.values()])
    r = await client.get("/api/v1/tokens", params={"user": "viewer-user"}, headers=admin)
    assert r.json() == own
    # Asking for your own by name needs no admin.
    r = await client.get("/api/v1/tokens", params={"user": "viewer-user"}, headers=viewer)
    assert r.json() == own


async def test_only_admins_list_other_users_tokens(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    viewer, admin = bearer(tokens["viewer"]), bearer(tokens["admin"])
    for params in ({"all": "true"}, {"user": "admin-user"}):
        r = await client.get("/api/v1/tokens", params=params, headers=viewer)
        assert r.status_code == 403 and "admin" in r.json()["error"]["message"]
    r = await client.get("/api/v1/tokens", params={"user": "nobody"}, headers=admin)
    assert r.status_code == 404 and r.json()["error"]["field"] == "user"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"all": "true", "user": "viewer-user"}, "all"),
        ({"all": "maybe"}, "all"),
        ({"user": "Not A Name"}, "user"),
    ],
)
async def test_bad_list_queries_are_422_naming_the_field(
    client: httpx.AsyncClient, tokens: dict[str, str], params: dict[str, str], field: str
) -> None:
    r = await client.get("/api/v1/tokens", params=params, headers=bearer(tokens["admin"]))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field


async def test_a_revoked_token_is_refused_at_once(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    viewer = bearer(tokens["viewer"])
    laptop = (await client.post("/api/v1/tokens", json={"name": "laptop"}, headers=viewer)).json()["token"]
    assert (await client.get("/api/v1/me", headers=bearer(laptop))).status_code == 200
    listed = (await client.get("/api/v1/tokens", headers=viewer)).json()
    laptop_id = next(t["id"] for t in listed if t["name"] == "laptop")

    r = await client.delete(f"/api/v1/tokens/{laptop_id}", headers=viewer)
    assert r.status_code == 200, r.text
    assert r.json()["revoked_at"] is not None and r.json()["user"] == "viewer-user"
    r = await client.get("/api/v1/me", headers=bearer(laptop))
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    assert (await client.get("/api/v1/me", headers=viewer)).status_code == 200  # the other token still works

    r = await client.delete(f"/api/v1/tokens/{laptop_id}", headers=viewer)
    assert r.status_code == 409 and "already" in r.json()["error"]["message"]
    assert r.json()["error"]["field"] == "token_id"
    listed = (await client.get("/api/v1/tokens", headers=viewer)).json()
    assert next(t for t in listed if t["id"] == laptop_id)["revoked_at"] is not None


async def test_another_users_token_is_not_found_to_a_non_admin(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    admins = (await client.get("/api/v1/tokens", headers=bearer(tokens["admin"]))).json()
    admin_token_id = admins[0]["id"]
    commander = bearer(tokens["commander"])
    other = await client.delete(f"/api/v1/tokens/{admin_token_id}", headers=commander)
    unknown = await client.delete("/api/v1/tokens/99999", headers=commander)
    assert other.status_code == unknown.status_code == 404
    assert other.json()["error"] == {**unknown.json()["error"], "message": f"no token {admin_token_id}"}
    assert (await client.get("/api/v1/me", headers=bearer(tokens["admin"]))).status_code == 200

    # An admin may revoke anyone's.
    viewers = (await client.get("/api/v1/tokens", headers=bearer(tokens["viewer"]))).json()
    r = await client.delete(f"/api/v1/tokens/{viewers[0]['id']}", headers=bearer(tokens["admin"]))
    assert r.status_code == 200 and r.json()["user"] == "viewer-user"
    assert (await client.get("/api/v1/me", headers=bearer(tokens["viewer"]))).status_code == 401


@pytest.mark.parametrize("token_id", ["0", "-1", "abc", "99999999999"])
async def test_a_token_id_that_names_nothing_is_404(
    client: httpx.AsyncClient, tokens: dict[str, str], token_id: str
) -> None:
    r = await client.delete(f"/api/v1/tokens/{token_id}", headers=bearer(tokens["admin"]))
    assert r.status_code == 404, r.text
    assert r.json()["error"]["field"] == "token_id"


async def test_disabling_a_user_refuses_their_tokens_and_signs_them_out(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    rt: Runtime,
    clock: FakeClock,
    tokens: dict[str, str],
) -> None:
    admin = bearer(tokens["admin"])
    ada = await user_with_token(rt.db, clock, "ada", Role.responder, password=PASSWORD)
    await sign_in(browser, "ada")

    r = await client.post("/api/v1/users/ada/disable", headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "ada" and r.json()["disabled_at"] is not None
    assert (await client.get("/api/v1/me", headers=bearer(ada))).status_code == 401
    page = await browser.get("/incidents/INC-1")
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/incidents/INC-1"
    form = await browser.get("/login")
    match = CSRF.search(form.text)
    assert match
    refused = await browser.post(
        "/login", data={"name": "ada", "password": PASSWORD, "csrf_token": match[1], "next": "/"}
    )
    assert refused.status_code == 401
    users = {u["name"]: u for u in (await client.get("/api/v1/users", headers=admin)).json()}
    assert users["ada"]["disabled_at"] is not None and users["admin-user"]["disabled_at"] is None

    # Again: nothing changes, and it says when it happened first.
    again = await client.post("/api/v1/users/ada/disable", headers=admin)
    assert again.status_code == 200 and again.json()["disabled_at"] == r.json()["disabled_at"]

    r = await client.post("/api/v1/users/ada/enable", headers=admin)
    assert r.status_code == 200 and r.json()["disabled_at"] is None
    assert (await client.get("/api/v1/me", headers=bearer(ada))).json()["name"] == "ada"
    # The session that was open stays ended; signing in again works.
    assert (await browser.get("/")).status_code == 303
    await sign_in(browser, "ada")


async def test_an_admin_cannot_disable_themselves(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    r = await client.post("/api/v1/users/admin-user/disable", headers=bearer(tokens["admin"]))
    assert r.status_code == 409
    error = r.json()["error"]
    assert error["field"] == "name" and "themselves" in error["message"]
    assert (await client.get("/api/v1/me", headers=bearer(tokens["admin"]))).status_code == 200


async def test_two_admins_disabling_each_other_leave_one(rt: Runtime, clock: FakeClock) -> None:
    """The last enabled admin stays: B's request, authenticated before A disabled B, is refused."""
    a = await user_with_token(rt.db, clock, "alice", Role.admin)
    b = await user_with_token(rt.db, clock, "bob", Role.admin)
    async with rt.db.session() as session:
        alice = await service.authenticate_token(session, a)
        bob = await service.authenticate_token(session, b)
    async with rt.db.transaction() as session:
        await service.disable_user(session, clock, alice, "bob")
    with pytest.raises(Conflict, match="last enabled admin"):
        async with rt.db.transaction() as session:
            await service.disable_user(session, clock, bob, "alice")


async def test_only_admins_disable_and_unknown_users_are_404(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    r = await client.post("/api/v1/users/viewer-user/disable", headers=bearer(tokens["commander"]))
    assert r.status_code == 403
    for action in ("disable", "enable"):
        for name in ("nobody", "Not%20A%20Name"):
            r = await client.post(f"/api/v1/users/{name}/{action}", headers=bearer(tokens["admin"]))
            assert r.status_code == 404, r.text
            assert r.json()["error"]["field"] == "name"


async def test_a_token_s_last_use_is_recorded_once_in_a_while(
    client: httpx.AsyncClient, tokens: dict[str, str], clock: FakeClock
) -> None:
    """Written when the token authenticates a request, at most every 10 minutes (not a write a request),
    so a token nobody uses any more stands out in the list."""
    viewer = bearer(tokens["viewer"])
    spare = (await client.post("/api/v1/tokens", json={"name": "spare"}, headers=viewer)).json()["token"]

    async def last_used() -> dict[str, str | None]:
        listed = (await client.get("/api/v1/tokens", headers=viewer)).json()
        return {t["name"]: t["last_used_at"] for t in listed}

    first = clock.now().isoformat().replace("+00:00", "Z")
    assert await last_used() == {"test": first, "spare": None}  # never used: none
    clock.advance(minutes=9)
    assert (await last_used())["test"] == first  # within 10 minutes: not written again
    clock.advance(minutes=1)
    later = clock.now().isoformat().replace("+00:00", "Z")
    assert await last_used() == {"test": later, "spare": None}
    assert (await client.get("/api/v1/me", headers=bearer(spare))).status_code == 200
    assert (await last_used())["spare"] == later
