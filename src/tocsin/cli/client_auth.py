"""`tocsin me`: who the API token acts as."""

from __future__ import annotations

import typer

from tocsin.cli.http import DEFAULT_URL, EXIT_CODES, Json, Token, Url, connect, emit_json


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


def register(app: typer.Typer) -> None:
    app.command(epilog=EXIT_CODES)(me)
