"""`tocsin incident ...`: declare, list, show and move incidents, over HTTP (TOCSIN_URL, TOCSIN_TOKEN)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console

from tocsin.cli import client_events, render
from tocsin.cli.http import DEFAULT_URL, EXIT_CODES, USAGE_ERROR, Json, Token, Url, connect, emit_json, fail
from tocsin.cli.http import incident_path as path
from tocsin.core.clock import SystemClock
from tocsin.incidents.lifecycle import Status

app = typer.Typer(
    help=f"Declare and work incidents (talks HTTP to TOCSIN_URL with TOCSIN_TOKEN).\n\n{EXIT_CODES}",
    no_args_is_help=True,
)

Ref = Annotated[str, typer.Argument(metavar="ID", help="the incident: INC-42 or 42", show_default=False)]
Note = Annotated[str, typer.Option("--note", help="why, for the timeline")]


class RoleName(StrEnum):
    commander = "commander"
    scribe = "scribe"
    communications = "communications"
    responder = "responder"


def _severity(value: str) -> str:
    return value.strip().upper()


def _detected_at(value: str | None) -> str | None:
    """ISO 8601 as given; without an offset it is this machine's local time."""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        fail(
            f"--detected-at: {value!r} is not an ISO 8601 time (e.g. 2026-11-26T14:05:00+01:00)", USAGE_ERROR
        )
    return (at if at.tzinfo else at.astimezone()).isoformat()


def _show(inc: dict[str, Any], as_json: bool) -> None:
    """An action's answer: the incident as JSON, or one summary line."""
    if as_json:
        emit_json(inc)
    else:
        Console(highlight=False).print(render.summary(inc, SystemClock().now()))


@app.command(epilog=EXIT_CODES)
def declare(
    title: Annotated[str, typer.Argument(help="what is wrong, in one line", show_default=False)],
    severity: Annotated[str, typer.Option("--severity", "-s", help="P0 (worst) to P3", show_default=False)],
    description: Annotated[str, typer.Option(help="more detail")] = "",
    component: Annotated[
        list[str] | None, typer.Option("--component", help="affected status-page component (repeatable)")
    ] = None,
    service: Annotated[
        list[str] | None, typer.Option("--service", help="affected service (repeatable)")
    ] = None,
    customer_facing: Annotated[
        bool | None,
        typer.Option(
            "--customer-facing/--internal", help="whether customers see it (default: yes for P0 and P1)"
        ),
    ] = None,
    commander: Annotated[str | None, typer.Option(help="the incident commander")] = None,
    detected_at: Annotated[
        str | None, typer.Option("--detected-at", help="when the trouble began, ISO 8601 (default: now)")
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Declare an incident; prints its id (INC-42). The SLA clock starts at --detected-at."""
    body: dict[str, Any] = {
        "title": title,
        "severity": _severity(severity),
        "description": description,
        "components": component or [],
        "services": service or [],
    }
    optional = {
        "customer_facing": customer_facing,
        "commander": commander,
        "detected_at": _detected_at(detected_at),
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    inc = connect(url, token).post("/api/v1/incidents", body)
    if as_json:
        emit_json(inc)
        return
    typer.echo(inc["id"])
    tz = render.zone(inc.get("timezone"))
    due = render.local(inc["sla"]["response_due_at"], tz)
    typer.echo(
        f"declared {inc['id']} ({inc['severity']}); respond by {due}; channel {inc['channel']}", err=True
    )


@app.command("list", epilog=EXIT_CODES)
def list_incidents(
    status: Annotated[
        list[Status] | None, typer.Option("--status", help="only these statuses (repeatable)")
    ] = None,
    severity: Annotated[
        list[str] | None, typer.Option("--severity", help="only these severities (repeatable)")
    ] = None,
    open_only: Annotated[bool, typer.Option("--open", help="only incidents not yet resolved")] = False,
    limit: Annotated[int, typer.Option(min=1, max=500, help="at most this many")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="skip this many (newest first)")] = 0,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Incidents, newest first, with time left to their response and resolution deadlines."""
    params: dict[str, Any] = {"limit": limit, "offset": offset, "open": open_only}
    if status:
        params["status"] = [s.value for s in status]
    if severity:
        params["severity"] = [_severity(s) for s in severity]
    page = connect(url, token).get("/api/v1/incidents", params)
    if as_json:
        emit_json(page)
        return
    console = Console(highlight=False)
    if not page["items"]:
        console.print("no incidents" if page["total"] == 0 else f"no incidents here ({page['total']} in all)")
        return
    console.print(render.incident_table(page["items"], page["total"], SystemClock().now()))


@app.command(epilog=EXIT_CODES)
def show(
    ref: Ref,
    events: Annotated[int, typer.Option(min=0, help="how many of the latest timeline events to show")] = 10,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Everything about one incident: fields, deadlines (policy time zone), roles, latest events."""
    api = connect(url, token)
    inc = api.get(path(ref))
    if as_json:
        emit_json(inc)
        return
    recent = api.get(f"{path(ref)}/timeline")[-events:] if events else []
    Console(highlight=False).print(render.incident_panel(inc, recent, SystemClock().now()))


@app.command(epilog=EXIT_CODES)
def ack(
    ref: Ref, note: Note = "", url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False
) -> None:
    """Acknowledge: someone has it. Stops the response clock."""
    _show(connect(url, token).post(f"{path(ref)}/acknowledge", {"note": note}), as_json)


@app.command("status", epilog=EXIT_CODES)
def change_status(
    ref: Ref,
    new: Annotated[Status, typer.Argument(metavar="STATUS", help="the new status", show_default=False)],
    note: Note = "",
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Move along the lifecycle (investigating, identified, mitigated, monitoring, resolved, ...)."""
    _show(connect(url, token).post(f"{path(ref)}/status", {"status": new.value, "note": note}), as_json)


@app.command("severity", epilog=EXIT_CODES)
def change_severity(
    ref: Ref,
    new: Annotated[str, typer.Argument(metavar="SEVERITY", help="P0 to P3", show_default=False)],
    reason: Annotated[str, typer.Option("--reason", help="why (required)", show_default=False)],
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Re-classify; every deadline is recomputed from the detection time."""
    body = {"severity": _severity(new), "reason": reason}
    _show(connect(url, token).post(f"{path(ref)}/severity", body), as_json)


@app.command(epilog=EXIT_CODES)
def role(
    ref: Ref,
    name: Annotated[RoleName, typer.Argument(metavar="ROLE", help="the role", show_default=False)],
    person: Annotated[str, typer.Argument(help="who", show_default=False)],
    unassign: Annotated[bool, typer.Option("--unassign", help="take the role away instead")] = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Give a role (commander, scribe, communications, responder) to someone, or take it away."""
    body = {"role": name.value, "person": person, "action": "unassign" if unassign else "assign"}
    inc = connect(url, token).post(f"{path(ref)}/roles", body)
    if as_json:
        emit_json(inc)
        return
    roles = inc["roles"]
    holders = [f"{r}: {roles[r]}" for r in ("commander", "scribe", "communications") if roles[r]]
    if roles["responders"]:
        holders.append(f"responders: {', '.join(roles['responders'])}")
    typer.echo(f"{inc['id']} roles: {'; '.join(holders) or 'none'}")


@app.command(epilog=EXIT_CODES)
def resolve(
    ref: Ref,
    summary: Annotated[str, typer.Option("--summary", help="what fixed it")] = "",
    override: Annotated[
        str, typer.Option("--override", help="resolve before the stability watch has passed, and why")
    ] = "",
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Resolve: the trouble is over (after the stability watch)."""
    body = {"summary": summary, "override_reason": override}
    _show(connect(url, token).post(f"{path(ref)}/resolve", body), as_json)


def _show_paging(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(result)
        return
    console = Console(highlight=False)
    for p in result["pages"]:
        ack = f"acknowledged ({p['acknowledged_via']})" if p["acknowledged_at"] else "unacknowledged"
        console.print(f"paged {p['person']:<16} {p['created_at']}  {p['step']:<28} {ack}", markup=False)
    for e in result["escalations"]:
        state = (
            f"finished {e['finished_at']}"
            if e["finished_at"]
            else f"next step {e['step']}, round {e['round']}"
        )
        console.print(f"escalation {e['chain']} ({e['trigger']}): {state}", markup=False)
    for t in result["timers"]:
        if t["fired_at"] is None:
            console.print(f"pending {t['kind']:<22} due {t['due_at']}", markup=False)
    if not result["pages"] and not result["escalations"]:
        console.print("nobody paged yet")


@app.command(epilog=EXIT_CODES)
def escalate(
    ref: Ref,
    chain: Annotated[
        str | None, typer.Option("--chain", help="default: the policy's unacknowledged chain")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="why, for the timeline")] = "",
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Escalate now: the running chain's next step at once, or start the chain."""
    result = connect(url, token).post(f"{path(ref)}/escalate", {"chain": chain, "reason": reason})
    _show_paging(result, as_json)


@app.command(epilog=EXIT_CODES)
def paging(ref: Ref, url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False) -> None:
    """Who was paged and at which step, running escalations, and the incident's pending timers."""
    _show_paging(connect(url, token).get(f"{path(ref)}/paging"), as_json)


@app.command(epilog=EXIT_CODES)
def close(ref: Ref, url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False) -> None:
    """Close a resolved incident (commanders)."""
    _show(connect(url, token).post(f"{path(ref)}/close"), as_json)


@app.command(epilog=EXIT_CODES)
def reopen(
    ref: Ref,
    reason: Annotated[str, typer.Option("--reason", help="why (required)", show_default=False)],
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Reopen a resolved or closed incident (commanders)."""
    _show(connect(url, token).post(f"{path(ref)}/reopen", {"reason": reason}), as_json)


@app.command(epilog=EXIT_CODES)
def timeline(
    ref: Ref,
    after: Annotated[int, typer.Option(min=0, help="only events after this sequence number")] = 0,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """The incident's timeline, oldest first: changes, notes, hypotheses, commands and their output."""
    api = connect(url, token)
    events = api.get(f"{path(ref)}/timeline", {"after": after})
    if as_json:
        emit_json(events)
        return
    inc = api.get(path(ref))
    console = Console(highlight=False)
    console.print(render.summary(inc, SystemClock().now()))
    console.print(render.timeline(events, render.zone(inc.get("timezone"))) if events else "no events")


@app.command(epilog=EXIT_CODES)
def verify(ref: Ref, url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False) -> None:
    """Check the timeline's hash chain; exits 1 when it is broken."""
    result = connect(url, token).get(f"{path(ref)}/verify")
    if as_json:
        emit_json(result)
    elif result["intact"]:
        typer.echo(f"{result['id']}: timeline intact ({result['events']} events)")
    else:
        typer.echo(f"{result['id']}: timeline BROKEN after {result['events']} events: {result['detail']}")
    if not result["intact"]:
        raise typer.Exit(1)


client_events.register(app)
