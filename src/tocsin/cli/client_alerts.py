"""`tocsin integration ...`, `tocsin silence ...`, `tocsin alert list`: alert sources and muting."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tocsin.alerts import matchers, setup
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
from tocsin.core.durations import parse_duration

integration_app = typer.Typer(help="Alert sources and their secret keys (admin).", no_args_is_help=True)
silence_app = typer.Typer(help="Mute alerts that match labels, for a while.", no_args_is_help=True)
alert_app = typer.Typer(help="Alerts received from integrations, monitors and reports.", no_args_is_help=True)
out = Console()


@integration_app.command("create", epilog=EXIT_CODES)
def create(
    name: Annotated[str, typer.Argument(help="lowercase name, e.g. prod-alertmanager")],
    kind: Annotated[
        str, typer.Option(help="alertmanager, prometheus, pagerduty, generic, heartbeat or sentry")
    ],
    service: Annotated[str | None, typer.Option(help="the policy service its alerts belong to")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Create an integration and print its secret key (shown once)."""
    body: dict[str, object] = {"name": name, "kind": kind, "service": service}
    created = connect(url, token).post("/api/v1/integrations", body)
    if as_json:
        emit_json(created)
        return
    _print_key(created, url)


def _print_key(integration: dict[str, Any], url: str) -> None:
    """The key on stdout (for scripts), and where to put it on stderr."""
    typer.echo(integration["key"])
    hint = setup.snippet(integration["kind"], url, integration["key"])
    if hint:
        typer.echo(hint, err=True)


@integration_app.command("list", epilog=EXIT_CODES)
def list_integrations(url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False) -> None:
    """Integrations (keys are never shown again)."""
    rows = connect(url, token).get("/api/v1/integrations")
    if as_json:
        emit_json(rows)
        return
    table = Table("name", "kind", "service", "from policy", "created", "disabled")
    for r in rows:
        table.add_row(
            r["name"],
            r["kind"],
            r["service"] or "-",
            "yes" if r["from_policy"] else "",
            r["created_at"][:16],
            (r["disabled_at"] or "")[:16],
        )
    out.print(table)


IntegrationName = Annotated[str, typer.Argument(help="the integration's name")]


@integration_app.command("disable", epilog=EXIT_CODES)
def disable(
    name: IntegrationName, url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False
) -> None:
    """Refuse the integration's key from now on (its alerts stay); `enable` undoes it."""
    row = connect(url, token).delete(f"/api/v1/integrations/{name}")
    said(row, as_json, f"integration {row['name']} disabled")


@integration_app.command("enable", epilog=EXIT_CODES)
def enable(name: IntegrationName, url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False) -> None:
    """Accept a disabled integration's key again."""
    row = connect(url, token).post(f"/api/v1/integrations/{name}/enable")
    said(row, as_json, f"integration {row['name']} enabled")


@integration_app.command("rotate-key", epilog=EXIT_CODES)
def rotate_key(
    name: IntegrationName, url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False
) -> None:
    """Give the integration a new secret key and print it (shown once); the old key stops working."""
    row = connect(url, token).post(f"/api/v1/integrations/{name}/key")
    if as_json:
        emit_json(row)
        return
    _print_key(row, url)


def _matcher(text: str) -> dict[str, object]:
    try:
        return matchers.parse_matcher(text)
    except ValueError as exc:
        fail(str(exc), USAGE_ERROR)


@silence_app.command("add", epilog=EXIT_CODES)
def add(
    match: Annotated[
        list[str], typer.Option("--match", "-m", help="name=value, name!=value, name=~regex, name!~regex")
    ],
    for_: Annotated[str, typer.Option("--for", help="how long, e.g. 2h")] = "1h",
    comment: Annotated[str, typer.Option(help="why")] = "",
    maintenance: Annotated[
        bool, typer.Option("--maintenance", help="mark it as a maintenance window")
    ] = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Mute matching alerts (they are still recorded) for a while."""
    try:
        ends = datetime.now(UTC) + parse_duration(for_)
    except ValueError as exc:
        fail(f"--for: {exc}", USAGE_ERROR)
    body = {
        "matchers": [_matcher(m) for m in match],
        "ends_at": ends.isoformat(),
        "comment": comment,
        "kind": "maintenance" if maintenance else "silence",
    }
    created = connect(url, token).post("/api/v1/silences", body)
    if as_json:
        emit_json(created)
        return
    typer.echo(f"silence {created['id']} until {created['ends_at'][:16]}")


@silence_app.command("list", epilog=EXIT_CODES)
def list_silences(
    expired: Annotated[bool, typer.Option("--expired", help="include expired silences")] = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Active silences (and expired ones with --expired)."""
    rows = connect(url, token).get("/api/v1/silences", {"expired": expired})
    if as_json:
        emit_json(rows)
        return
    table = Table("id", "kind", "matchers", "ends", "by", "comment")
    for r in rows:
        matchers = ", ".join(
            f"{m['name']}{'' if m['is_equal'] else '!'}{'=~' if m['is_regex'] else '='}{m['value']}"
            for m in r["matchers"]
        )
        table.add_row(str(r["id"]), r["kind"], matchers, r["ends_at"][:16], r["created_by"], r["comment"])
    out.print(table)


@silence_app.command("expire", epilog=EXIT_CODES)
def expire(
    silence_id: Annotated[int, typer.Argument(help="the silence's id")],
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """End a silence now."""
    row = connect(url, token).delete(f"/api/v1/silences/{silence_id}")
    said(row, as_json, f"silence {row['id']} ended")


Status = Annotated[str, typer.Option(help="open, firing, acknowledged, resolved or all")]
Incident = Annotated[
    str | None, typer.Option("--incident", "-i", help="only this incident's alerts (INC-42)")
]
Filter = Annotated[
    list[str] | None,
    typer.Option(
        "--filter", "-f", help='label matchers, e.g. \'alertname="DiskFull", instance=~"db-.*"\' (repeatable)'
    ),
]


def _filters(texts: list[str] | None) -> list[str]:
    """The --filter values, each checked here first (a usage error names it)."""
    for text in texts or []:
        try:
            matchers.parse_filter(text)
        except ValueError as exc:
            fail(f"--filter: {exc}", USAGE_ERROR)
    return texts or []


@alert_app.command("list", epilog=EXIT_CODES)
def list_alerts(
    status: Status = "open",
    filter_: Filter = None,
    incident: Incident = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 50,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Alerts, newest first, those whose labels match every --filter matcher (as a silence's would)."""
    query = {"status": status, "limit": limit, "filter": _filters(filter_), "incident": incident}
    rows = connect(url, token).get("/api/v1/alerts", {k: v for k, v in query.items() if v is not None})
    if as_json:
        emit_json(rows)
        return
    table = Table("id", "severity", "status", "summary", "integration", "count", "incident", "muted")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["severity"],
            r["status"],
            r["summary"][:60],
            r["integration"],
            str(r["count"]),
            r["incident"] or "-",
            r["muted_by"] or "",
        )
    out.print(table)


@alert_app.command("groups", epilog=EXIT_CODES)
def alert_groups(
    by: Annotated[str, typer.Option(help="the label to count by")] = "alertname",
    status: Status = "open",
    incident: Incident = None,
    filter_: Filter = None,
    limit: Annotated[int, typer.Option(help="at most this many values")] = 20,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """What a storm is made of: the commonest values of a label among the alerts (those matching every
    --filter matcher), with their counts."""
    query = {"by": by, "status": status, "incident": incident, "limit": limit, "filter": _filters(filter_)}
    rows = connect(url, token).get("/api/v1/alerts/groups", {k: v for k, v in query.items() if v is not None})
    if as_json:
        emit_json(rows)
        return
    table = Table(by, "alerts")
    for r in rows:
        table.add_row(r["value"] or f"(no {by})", f"{r['count']:,}")
    out.print(table)


@alert_app.command("resolve", epilog=EXIT_CODES)
def resolve(
    ids: Annotated[list[int] | None, typer.Argument(help="the alerts' ids")] = None,
    filter_: Filter = None,
    incident: Incident = None,
    limit: Annotated[int, typer.Option(help="with --filter: at most this many, newest first")] = 200,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Resolve alerts by hand: these ids, or the open ones matching --filter (stale alerts whose sender
    will never clear them). Each incident's timeline says who; a sender firing one again opens a new one."""
    client = connect(url, token)
    wanted = list(ids or [])
    if filter_ or incident:
        query = {"status": "open", "limit": limit, "filter": _filters(filter_), "incident": incident}
        listed = client.get("/api/v1/alerts", {k: v for k, v in query.items() if v is not None})
        wanted += [row["id"] for row in listed]
    if not wanted:
        if not (filter_ or incident):
            fail("give the alerts' ids, or --filter", USAGE_ERROR)
        said({"resolved": [], "skipped": []}, as_json, "no open alert matches")
        return
    done = client.post("/api/v1/alerts/resolve", {"ids": wanted})
    resolved, skipped = done["resolved"], done["skipped"]
    said(done, as_json, f"resolved {len(resolved)}" + (f"; {len(skipped)} not open" if skipped else ""))
