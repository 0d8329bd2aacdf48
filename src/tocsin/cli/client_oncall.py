"""`tocsin oncall ...`: who is on call now and next, rotations and their gaps, overrides, over HTTP."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tocsin.cli.http import DEFAULT_URL, EXIT_CODES, USAGE_ERROR, Json, Token, Url, connect, emit_json, fail
from tocsin.cli.render import local, zone

app = typer.Typer(
    help=f"Who is on call, rotations and overrides (talks HTTP to TOCSIN_URL with TOCSIN_TOKEN).\n\n{EXIT_CODES}",
    no_args_is_help=True,
)
out = Console(highlight=False)


def _instant(option: str, value: str) -> str:
    """ISO 8601 as given; without an offset it is this machine's local time."""
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option}: {value!r} is not an ISO 8601 time (e.g. 2026-11-26T20:00:00-05:00)", USAGE_ERROR)
    return (at if at.tzinfo else at.astimezone()).isoformat()


def _who(name: object, full_name: object = None) -> Text:
    if not name:
        return Text("nobody (gap)", style="bold red")
    shown = f"{full_name} ({name})" if full_name and full_name != name else str(name)
    return Text(shown)


@app.command(epilog=EXIT_CODES)
def now(
    team: Annotated[str | None, typer.Option("--team", help="one team (default: all)")] = None,
    at: Annotated[str | None, typer.Option("--at", help="another instant, ISO 8601 (default: now)")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Who is on call now, per team and layer, and who takes over next."""
    params = {k: v for k, v in {"team": team, "at": _instant("--at", at) if at else None}.items() if v}
    body = connect(url, token).get("/api/v1/oncall", params)
    if as_json:
        emit_json(body)
        return
    tz = zone(body.get("timezone"))
    if not body["teams"]:
        out.print("No teams in the policy: nobody is on call (add people and teams to tocsin.yaml).")
        return
    for t in body["teams"]:
        table = Table(title=f"{t['title']} ({t['team']})", title_justify="left")
        for column in ("layer", "rotation", "on call now", "until", "next", "from"):
            table.add_column(column)
        for layer in t["layers"]:
            for r in layer["rotations"]:
                who = _who(r["person"], r.get("full_name"))
                if r.get("override"):
                    who.append(" [override]", style="cyan")
                table.add_row(
                    layer["layer"],
                    r["rotation"],
                    who,
                    local(r.get("until"), tz),
                    str(r.get("next_person") or "-"),
                    local(r.get("next_at"), tz),
                )
        out.print(table)


@app.command(epilog=EXIT_CODES)
def rotations(url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False) -> None:
    """Rotations with their hand-offs, gaps in the next 4 weeks and iCal feed URLs."""
    body = connect(url, token).get("/api/v1/rotations")
    if as_json:
        emit_json(body)
        return
    tz = zone(body.get("timezone"))
    table = Table()
    for column in ("rotation", "team", "layer", "members", "hand-off", "gaps (4 weeks)"):
        table.add_column(column)
    for r in body["rotations"]:
        hours = (
            f" {r['active']['starts']}-{r['active']['ends']} {','.join(r['active']['days'])}"
            if r["active"]
            else ""
        )
        gaps = (
            Text(f"{len(r['gaps'])} gap(s), first {local(r['gaps'][0]['starts_at'], tz)}", style="yellow")
            if r["gaps"]
            else Text("none")
        )
        table.add_row(
            r["name"],
            r["team"],
            r["layer"],
            ", ".join(r["members"]),
            f"{r['handoff']} from {r['start']}{hours}",
            gaps,
        )
    out.print(table)
    for r in body["rotations"]:
        out.print(f"{r['name']} calendar: {r['calendar_url']}", soft_wrap=True)
    for warning in body.get("warnings", []):
        out.print(Text(f"warning: {warning}", style="yellow"), soft_wrap=True)


@app.command(epilog=EXIT_CODES)
def override(
    rotation: Annotated[str, typer.Argument(help="the rotation, e.g. portal-primary", show_default=False)],
    person: Annotated[
        str, typer.Argument(help="who covers it, from the policy's people", show_default=False)
    ],
    start: Annotated[
        str,
        typer.Option(
            "--start", help="from, ISO 8601 (without an offset: this machine's time)", show_default=False
        ),
    ],
    end: Annotated[
        str, typer.Option("--end", help="until, ISO 8601; at most 90 days after --start", show_default=False)
    ],
    note: Annotated[str, typer.Option("--note", help="why, e.g. a swap")] = "",
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Put PERSON on call for ROTATION from --start to --end (commander)."""
    body = {
        "rotation": rotation,
        "person": person,
        "starts_at": _instant("--start", start),
        "ends_at": _instant("--end", end),
        "note": note,
    }
    created = connect(url, token).post("/api/v1/overrides", body)
    if as_json:
        emit_json(created)
        return
    out.print(
        f"override {created['id']}: {created['person']} on call for {created['rotation']} "
        f"from {created['starts_at']} to {created['ends_at']}",
        soft_wrap=True,
    )


@app.command("overrides", epilog=EXIT_CODES)
def list_overrides(url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False) -> None:
    """Current and future overrides, oldest first."""
    rows: list[dict[str, Any]] = connect(url, token).get("/api/v1/overrides")
    if as_json:
        emit_json(rows)
        return
    if not rows:
        out.print("No current or future overrides.")
        return
    table = Table()
    for column in ("id", "rotation", "person", "from", "until", "by", "note"):
        table.add_column(column)
    for o in rows:
        table.add_row(
            str(o["id"]),
            o["rotation"],
            o["person"],
            local(o["starts_at"], zone(None)),
            local(o["ends_at"], zone(None)),
            o["created_by"],
            Text(o["note"]),
        )
    out.print(table)


@app.command("delete-override", epilog=EXIT_CODES)
def delete_override(
    override_id: Annotated[
        int,
        typer.Argument(metavar="ID", help="the override's id (tocsin oncall overrides)", show_default=False),
    ],
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Withdraw an override (commander); the rotation's schedule applies again."""
    if not 1 <= override_id < 2**31:
        fail(f"{override_id} is not an override id", USAGE_ERROR)
    deleted = connect(url, token).delete(f"/api/v1/overrides/{override_id}")
    if as_json:
        emit_json(deleted)
        return
    out.print(f"override {deleted['id']} deleted ({deleted['person']} for {deleted['rotation']})")
