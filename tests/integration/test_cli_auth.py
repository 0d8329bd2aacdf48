"""`tocsin token list|revoke` and `tocsin user list|disable|enable` against a real server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from tocsin.cli.main import app
from tocsin.testing import bearer, served

TOKEN = "tok_cli-auth-admin"
runner = CliRunner()


@pytest.fixture
def url(database_url: str) -> Iterator[str]:
    with served(database_url, TOKEN) as base:
        yield base


def run(url: str, *args: str, token: str = TOKEN) -> Result:
    return runner.invoke(app, list(args), env={"TOCSIN_URL": url, "TOCSIN_TOKEN": token, "COLUMNS": "200"})


def cli(url: str, *args: str, token: str = TOKEN) -> str:
    result = run(url, *args, token=token)
    assert result.exit_code == 0, result.output
    return result.stdout


def me(url: str, token: str) -> int:
    return httpx.get(f"{url}/api/v1/me", headers=bearer(token)).status_code


def test_tokens_are_listed_and_revoked(url: str) -> None:
    admin = bearer(TOKEN)
    assert httpx.post(
        f"{url}/api/v1/users", json={"name": "ada", "role": "responder"}, headers=admin
    ).is_success
    ada = httpx.post(f"{url}/api/v1/tokens", json={"name": "laptop", "user": "ada"}, headers=admin).json()[
        "token"
    ]

    own = json.loads(cli(url, "token", "list", "--json"))
    assert [(t["name"], t["user"]) for t in own] == [("bootstrap", "admin")]
    everyone = cli(url, "token", "list", "--all")
    assert "laptop" in everyone and "bootstrap" in everyone and ada not in everyone and TOKEN not in everyone
    adas = json.loads(cli(url, "token", "list", "--user", "ada", "--json"))
    assert [t["name"] for t in adas] == ["laptop"]

    laptop = adas[0]["id"]
    assert cli(url, "token", "revoke", str(laptop)) == f"token {laptop} (laptop, of ada) revoked\n"
    assert me(url, ada) == 401
    again = run(url, "token", "revoke", str(laptop))
    assert again.exit_code == 1 and f"token {laptop} was revoked already" in again.stderr
    assert json.loads(cli(url, "token", "list", "--user", "ada", "--json"))[0]["revoked_at"]

    both = run(url, "token", "list", "--all", "--user", "ada")
    assert both.exit_code == 2 and "not both" in both.stderr


def test_a_user_is_disabled_and_enabled(url: str, database_url: str) -> None:
    admin = bearer(TOKEN)
    assert httpx.post(f"{url}/api/v1/users", json={"name": "ada", "role": "admin"}, headers=admin).is_success
    ada = httpx.post(f"{url}/api/v1/tokens", json={"user": "ada"}, headers=admin).json()["token"]

    assert cli(url, "user", "disable", "ada") == "user ada disabled\n"
    assert me(url, ada) == 401
    users = {u["name"]: u for u in json.loads(cli(url, "user", "list", "--json"))}
    assert users["ada"]["disabled_at"] and users["admin"]["disabled_at"] is None
    assert "ada" in cli(url, "user", "list")
    # Ada's token lists nothing while she is disabled: it is refused.
    refused = run(url, "token", "list", token=ada)
    assert refused.exit_code == 1 and "the token was refused" in refused.stderr
    # No new token for her either, over the API or on the server host.
    r = httpx.post(f"{url}/api/v1/tokens", json={"user": "ada"}, headers=admin)
    assert r.status_code == 409 and r.json()["error"]["field"] == "user" and "disabled" in r.text
    local = runner.invoke(
        app, ["token", "create", "--user", "ada"], env={"TOCSIN_DATABASE_URL": database_url}
    )
    assert local.exit_code == 1 and "user 'ada' is disabled" in local.stderr

    enabled = json.loads(cli(url, "user", "enable", "ada", "--json"))
    assert enabled["name"] == "ada" and enabled["disabled_at"] is None
    assert me(url, ada) == 200

    self_disable = run(url, "user", "disable", "admin")
    assert self_disable.exit_code == 1 and "cannot disable themselves" in self_disable.stderr
    missing = run(url, "user", "disable", "nobody")
    assert missing.exit_code == 1 and "no user 'nobody'" in missing.stderr
