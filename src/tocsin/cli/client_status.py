"""`tocsin status ...`: post status-page updates and switch maintenance mode over HTTP; export the page.

`update` and `maintenance` talk to TOCSIN_URL with TOCSIN_TOKEN. `export` runs beside the database (like
`tocsin db upgrade`): it reads TOCSIN_DATABASE_URL and TOCSIN_POLICY and writes static files.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from tocsin.cli.http import DEFAULT_URL, EXIT_CODES, USAGE_ERROR, Json, Token, Url, connect, emit_json, fail
from tocsin.cli.http import incident_path as path
from tocsin.statuspage.vocab import ComponentStatus, UpdateStatus

app = typer.Typer(
    help=f"The public status page: updates, maintenance mode, static export.\n\n{EXIT_CODES}",
    no_args_is_help=True,
)


class Switch(StrEnum):
    on = "on"
    off = "off"


def _components(pairs: list[str]) -> dict[str, str]:
    """`api=major_outage` pairs as a mapping; a usage error names a bad one."""
    out: dict[str, str] = {}
    statuses = [s.value for s in ComponentStatus]
    for pair in pairs:
        name, sep, status = pair.partition("=")
        if not sep or not name or status not in statuses:
            fail(
                f"--component {pair!r}: expected NAME=STATUS, STATUS one of {', '.join(statuses)}",
                USAGE_ERROR,
            )
        out[name] = status
    return out


@app.command(epilog=EXIT_CODES)
def update(
    ref: Annotated[str, typer.Argument(metavar="ID", help="the incident: INC-42 or 42", show_default=False)],
    status: Annotated[
        UpdateStatus | None, typer.Option(help="default: what the incident's status suggests")
    ] = None,
    message: Annotated[
        str | None,
        typer.Option("--message", "-m", help="the text (default: the policy's template, filled in)"),
    ] = None,
    component: Annotated[
        list[str] | None,
        typer.Option(
            "--component", help="NAME=STATUS, e.g. api=major_outage (repeatable; default: suggested)"
        ),
    ] = None,
    edit: Annotated[
        bool, typer.Option("--edit", help="edit the filled-in template in $EDITOR first")
    ] = False,
    draft: Annotated[
        bool, typer.Option("--draft", help="print the filled-in template; post nothing")
    ] = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Post a public status update of a customer-facing incident."""
    api = connect(url, token)
    body: dict[str, Any] = {}
    if draft or edit:
        suggested = api.get(f"{path(ref)}/status-updates/draft")
        if draft:
            if as_json:
                emit_json(suggested)
            else:
                typer.echo(suggested["body"])
            return
        edited = click.edit(message or suggested["body"])
        if edited is None or not edited.strip():
            fail("nothing posted: the message was left empty", USAGE_ERROR)
        message = edited.strip()
    if status is not None:
        body["status"] = status.value
    if message is not None:
        body["body"] = message
    if component:
        body["components"] = _components(component)
    posted = api.post(f"{path(ref)}/status-updates", body)
    if as_json:
        emit_json(posted)
        return
    changed = (
        ", ".join(f"{a['code']} {a['new_status']}" for a in posted["affected_components"]) or "no change"
    )
    typer.echo(
        f"posted update {posted['id']} of {posted['incident']} ({posted['status']}); components: {changed}"
    )


def _until(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--until: {value!r} is not an ISO 8601 time (e.g. 2026-11-26T18:00:00+01:00)", USAGE_ERROR)
    return (at if at.tzinfo else at.astimezone()).isoformat()


@app.command(epilog=EXIT_CODES)
def maintenance(
    switch: Annotated[Switch, typer.Argument(help="on or off", show_default=False)],
    component: Annotated[
        list[str] | None, typer.Option("--component", help="a component (repeatable; default: all)")
    ] = None,
    title: Annotated[str, typer.Option(help="what the banner says")] = "",
    message: Annotated[str, typer.Option("--message", "-m", help="the public update's text")] = "",
    until: Annotated[str | None, typer.Option(help="when on: switch off by itself at, ISO 8601")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Maintenance mode: components under maintenance, a banner, their alerts recorded but muted."""
    body: dict[str, Any] = {"on": switch is Switch.on, "components": component or []}
    if switch is Switch.on:
        body.update({"title": title, "body": message, "until": _until(until)})
    windows = connect(url, token).post("/api/v1/status/maintenance-mode", body)
    if as_json:
        emit_json(windows)
        return
    for w in windows:
        typer.echo(f"maintenance {w['id']} {w['status']}: {', '.join(w['components'])}")


@app.command(epilog="Exit codes: 0 done, 1 cannot read the database or policy, 2 usage error.")
def export(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="where to write the files")],
    watch: Annotated[bool, typer.Option("--watch", help="keep running; rewrite after every change")] = False,
    base_path: Annotated[
        str,
        typer.Option(
            "--base-path", help="the URL path DIR is served at, e.g. /status (default: the site root)"
        ),
    ] = "",
    live_url: Annotated[
        str | None,
        typer.Option(
            "--live-url",
            help="Tocsin's public URL, for the subscribe form and report link (TOCSIN_PUBLIC_URL)",
        ),
    ] = None,
    public_url: Annotated[
        str | None, typer.Option("--public-url", help="the export's own URL, for links in the JSON and feed")
    ] = None,
) -> None:
    """Write the whole public page (HTML, CSS, JSON, feed) as static files, reading the database directly."""
    from tocsin.cli.server import load_settings
    from tocsin.core.clock import SystemClock
    from tocsin.db.engine import Database
    from tocsin.policy.loader import PolicyError, default_policy, load_policy
    from tocsin.statuspage import export as exporting

    if base_path and not base_path.startswith("/"):
        fail("--base-path must start with / (or be empty for the site root)", USAGE_ERROR)
    settings = load_settings()
    try:
        policy = load_policy(settings.policy) if settings.policy else default_policy()
    except PolicyError as exc:
        fail(f"cannot load the policy: {exc.issues[0]}")
    target = exporting.Target(directory, base_path.rstrip("/"), live_url or settings.public_url, public_url)

    def done(version: int, paths: list[str]) -> None:
        print(
            f"exported {len(paths)} files to {directory} (page version {version})",
            file=sys.stderr,
            flush=True,
        )

    async def run() -> None:
        db = Database(settings.database_url)
        try:
            watcher = exporting.Watcher(db, SystemClock(), policy, target)
            if watch:
                await exporting.watch(watcher, done=done)
            else:
                paths = await watcher.step()
                done(watcher.version, paths or [])
        finally:
            await db.dispose()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # the database is away or the directory is not writable: one line
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        fail(f"cannot export the status page: {detail}")
