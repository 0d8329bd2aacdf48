"""`tocsin me`, `tocsin token list|revoke`, `tocsin user list|disable|enable`: who may call the API."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tocsin.cli.http import (
    DEFAULT_URL,
    EXIT_CODES,
    USAGE_ERROR,
    Json,
    Token,
    Url,
    connect,
    emit_json,
    fail,
    said,
)

user_app = typer.Typer(help="Users: list, disable, enable (admin).", no_args_is_help=True)
out = Console()


def me(url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False) -> None:
    """Who am I: the user and role the API token acts as."""
    user = connect(url, token).get("/api/v1/me")
    if as_json:
        emit_json(user)
        return
    shown = (
        f"{user['name']} ({user['display_name']})"
        if user.get("display_name") not in ("", user["name"])
        else user["name"]
    )
    typer.echo(f"{shown}, role {user['role']}, at {url.rstrip('/')}")


def _time(value: str | None) -> str:
    return (value or "")[:16]


def token_list(
    everyone: Annotated[bool, typer.Option("--all", help="every user's tokens (admin)")] = False,
    user: Annotated[str | None, typer.Option(help="this user's tokens (admin)")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Your API tokens, revoked ones included (never their secrets); --all or --user for others'."""
    if everyone and user:
        fail("give --all or --user, not both", USAGE_ERROR)
    params: dict[str, Any] = {"all": True} if everyone else {"user": user} if user else {}
    rows = connect(url, token).get("/api/v1/tokens", params)
    if as_json:
        emit_json(rows)
        return
    table = Table("id", "name", "user", "created", "last used", "revoked")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["name"],
            r["user"],
            _time(r["created_at"]),
            _time(r["last_used_at"]),
            _time(r["revoked_at"]),
        )
    out.print(table)


def token_revoke(
    token_id: Annotated[int, typer.Argument(metavar="ID", help="the token's id, from `tocsin token list`")],
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Revoke an API token (your own, or anyone's as an admin): refused from now on."""
    row = connect(url, token).delete(f"/api/v1/tokens/{token_id}")
    said(row, as_json, f"token {row['id']} ({row['name']}, of {row['user']}) revoked")


UserName = Annotated[str, typer.Argument(help="the user's login name")]


@user_app.command("list", epilog=EXIT_CODES)
def user_list(url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False) -> None:
    """Every user, with their role and when they were disabled."""
    rows = connect(url, token).get("/api/v1/users")
    if as_json:
        emit_json(rows)
        return
    table = Table("name", "display name", "role", "created", "disabled")
    for r in rows:
        table.add_row(
            r["name"], r["display_name"], r["role"], _time(r["created_at"]), _time(r["disabled_at"])
        )
    out.print(table)


@user_app.command("disable", epilog=EXIT_CODES)
def user_disable(name: UserName, url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False) -> None:
    """Disable a user: their tokens and password are refused and their console sessions end."""
    row = connect(url, token).post(f"/api/v1/users/{name}/disable")
    said(row, as_json, f"user {row['name']} disabled")


@user_app.command("enable", epilog=EXIT_CODES)
def user_enable(name: UserName, url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False) -> None:
    """Enable a disabled user: their tokens (those not revoked) and password work again."""
    row = connect(url, token).post(f"/api/v1/users/{name}/enable")
    said(row, as_json, f"user {row['name']} enabled")


def register(app: typer.Typer, tokens: typer.Typer) -> None:
    """Add `me` and `user ...` to the app, and the client commands of `tocsin token` to `tokens`, whose
    `create` is a server command (tocsin.cli.server)."""
    app.command(epilog=EXIT_CODES)(me)
    tokens.command("list", epilog=EXIT_CODES)(token_list)
    tokens.command("revoke", epilog=EXIT_CODES)(token_revoke)
    app.add_typer(user_app, name="user")
