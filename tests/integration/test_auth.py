"""The permission matrix: 401 without a token, 403 below the needed role, on both databases."""

from __future__ import annotations

import httpx
import pytest

from tocsin.testing import bearer

ROLES = ["viewer", "responder", "commander", "admin"]

# (method, path, body, the lowest role allowed)
MATRIX = [
    ("GET", "/api/v1/incidents", None, "viewer"),
    ("GET", "/api/v1/incidents/INC-1", None, "viewer"),
    ("GET", "/api/v1/incidents/INC-1/timeline", None, "viewer"),
    ("GET", "/api/v1/incidents/INC-1/verify", None, "viewer"),
    ("GET", "/api/v1/me", None, "viewer"),
    ("GET", "/api/v1/tokens", None, "viewer"),
    ("DELETE", "/api/v1/tokens/99999", None, "viewer"),
    ("GET", "/metrics", None, "viewer"),
    ("GET", "/api/v1/alerts?filter=alertname%3DX", None, "viewer"),
    ("GET", "/api/v1/alerts/groups", None, "viewer"),
    ("POST", "/api/v1/alerts/resolve", {"ids": [99999]}, "responder"),
    ("GET", "/api/monitoring?type=metrics", None, "viewer"),
    ("POST", "/api/v1/incidents", {"title": "x", "severity": "P2"}, "responder"),
    ("POST", "/api/v1/incidents/INC-1/notes", {"text": "n"}, "responder"),
    ("POST", "/api/v1/incidents/INC-1/hypotheses", {"text": "h"}, "responder"),
    ("POST", "/api/v1/incidents/INC-1/commands", {"command": "c"}, "responder"),
    ("POST", "/api/v1/incidents/INC-1/severity", {"severity": "P1", "reason": "r"}, "responder"),
    ("POST", "/api/v1/incidents/INC-1/roles", {"role": "scribe", "person": "p"}, "commander"),
    ("POST", "/api/v1/incidents/INC-1/close", None, "commander"),
    ("GET", "/api/v1/users", None, "admin"),
    ("POST", "/api/v1/users", {"name": "newbie", "role": "viewer"}, "admin"),
    ("POST", "/api/v1/users/nobody/disable", None, "admin"),
    ("POST", "/api/v1/users/nobody/enable", None, "admin"),
]


@pytest.fixture
async def incident(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    r = await client.post(
        "/api/v1/incidents", json={"title": "seed", "severity": "P3"}, headers=bearer(tokens["responder"])
    )
    assert r.status_code == 201


@pytest.mark.parametrize(("method", "path", "body", "lowest"), MATRIX)
async def test_matrix(
    client: httpx.AsyncClient,
    tokens: dict[str, str],
    incident: None,
    method: str,
    path: str,
    body: dict[str, object] | None,
    lowest: str,
) -> None:
    r = await client.request(method, path, json=body)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthorized"
    r = await client.request(method, path, json=body, headers=bearer("tsn_not-a-real-token"))
    assert r.status_code == 401
    for role in ROLES:
        r = await client.request(method, path, json=body, headers=bearer(tokens[role]))
        if ROLES.index(role) < ROLES.index(lowest):
            assert r.status_code == 403, (role, r.text)
            assert lowest in r.json()["error"]["message"]
        else:
            assert r.status_code not in (401, 403), (role, r.text)


async def test_public_endpoints_need_no_token(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    r = await client.get("/api/monitoring?type=health")
    assert r.status_code == 200 and r.json()["summary"]["status"] == "ok"


async def test_malformed_authorization_header(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/incidents", headers={"Authorization": "Token abc"})
    assert r.status_code == 401 and "Bearer" in r.json()["error"]["message"]


async def test_tokens_are_stored_hashed_and_created_once(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    r = await client.post("/api/v1/tokens", json={"name": "laptop"}, headers=bearer(tokens["viewer"]))
    assert r.status_code == 201
    new = r.json()["token"]
    assert (await client.get("/api/v1/me", headers=bearer(new))).json()["name"] == "viewer-user"
    r = await client.post("/api/v1/tokens", json={"user": "admin-user"}, headers=bearer(tokens["viewer"]))
    assert r.status_code == 403
