"""How the CLI shows incidents: tables, SLA countdowns, the detail panel and the timeline.

Everything here takes the API's JSON and `now`, and returns Rich renderables; user text is always
wrapped in `Text`, so a title like "[red]" is shown, not interpreted as markup.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

Incident = dict[str, Any]
Event = dict[str, Any]

SEVERITY_STYLE = {"P0": "bold red", "P1": "red", "P2": "yellow", "P3": "blue"}
STATUS_STYLE = {
    "triggered": "bold red",
    "acknowledged": "yellow",
    "investigating": "yellow",
    "identified": "cyan",
    "mitigated": "cyan",
    "monitoring": "blue",
    "resolved": "green",
    "closed": "dim",
}
URGENT = 0.25  # under this share of the window left, a countdown turns yellow
OUTPUT_LINES = 40  # command output lines shown in the timeline; --json has all of it


def parse_time(value: object) -> datetime | None:
    """An aware datetime from the API's ISO 8601 text (naive values are UTC)."""
    if not value:
        return None
    at = datetime.fromisoformat(str(value))
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def zone(name: str | None) -> tzinfo:
    """The policy's time zone, or UTC when this machine does not know it."""
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def local(value: object, tz: tzinfo, *, seconds: bool = False) -> str:
    """`2026-11-26 16:00 CET` in the policy's time zone; `-` when unset."""
    at = parse_time(value)
    if at is None:
        return "-"
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


def duration(delta: timedelta) -> str:
    """A short human duration: `45s`, `5m`, `1h 05m`, `2d 3h`."""
    total = int(abs(delta.total_seconds()))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{seconds}s"


def countdown(due: object, start: object, now: datetime) -> Text:
    """Time left until `due`: green, yellow under 25% of the window left, red `breached 5m ago`."""
    due_at, start_at = parse_time(due), parse_time(start)
    if due_at is None:
        return Text("-", style="dim")
    left = due_at - now
    if left <= timedelta(0):
        return Text(f"breached {duration(left)} ago", style="bold red")
    window = due_at - start_at if start_at is not None else left
    urgent = window > timedelta(0) and left / window < URGENT
    return Text(f"{duration(left)} left", style="yellow" if urgent else "green")


def response_cell(inc: Incident, now: datetime) -> Text:
    """Countdown to the response deadline, or whether the acknowledgement met it."""
    sla = inc["sla"]
    if inc.get("acknowledged_at"):
        return (
            Text("acked late", style="red") if sla["response_breached"] else Text("acked", style="dim green")
        )
    return countdown(sla["response_due_at"], inc["detected_at"], now)


def resolution_cell(inc: Incident, now: datetime) -> Text:
    """Countdown to the resolution target, or whether the resolution met it."""
    sla = inc["sla"]
    if inc.get("resolved_at"):
        late = sla["resolution_breached"]
        return Text("resolved late", style="red") if late else Text("resolved", style="dim green")
    return countdown(sla["resolution_due_at"], inc["detected_at"], now)


def severity(value: str) -> Text:
    return Text(value, style=SEVERITY_STYLE.get(value, ""))


def status(value: str) -> Text:
    return Text(value, style=STATUS_STYLE.get(value, ""))


def age(inc: Incident, now: datetime) -> str:
    detected = parse_time(inc["detected_at"])
    return duration(now - detected) if detected else "-"


def incident_table(items: list[Incident], total: int, now: datetime) -> Table:
    """The `list` view: one row per incident, with SLA countdowns."""
    table = Table(title=f"Incidents ({len(items)} of {total})", title_justify="left", expand=False)
    for name in ("ID", "Sev", "Status", "Title", "Commander", "Age", "Response", "Resolution"):
        table.add_column(name, no_wrap=name in ("ID", "Sev", "Status", "Age"))
    for inc in items:
        table.add_row(
            Text(inc["id"], style="bold"),
            severity(inc["severity"]),
            status(inc["status"]),
            Text(inc["title"]),
            Text(inc["roles"]["commander"] or "-"),
            age(inc, now),
            response_cell(inc, now),
            resolution_cell(inc, now),
        )
    return table


def summary(inc: Incident, now: datetime) -> Text:
    """One line after an action: `INC-4 P1 acknowledged: Checkout down (resolution: 3h 40m left)`."""
    line = Text.assemble(
        (inc["id"], "bold"),
        " ",
        severity(inc["severity"]),
        " ",
        status(inc["status"]),
        ": ",
        Text(inc["title"]),
    )
    if inc["status"] not in ("resolved", "closed"):
        line.append(" (resolution: ")
        line.append_text(resolution_cell(inc, now))
        line.append(")")
    return line


def _deadline(inc: Incident, key: str, tz: tzinfo, now: datetime) -> Text:
    due = inc["sla"].get(key)
    if not due:
        return Text("-", style="dim")
    text = Text(local(due, tz))
    if key == "response_due_at":
        text.append("  ").append_text(response_cell(inc, now))
    elif key == "resolution_due_at":
        text.append("  ").append_text(resolution_cell(inc, now))
    else:
        text.append("  ").append_text(countdown(due, None, now))
    return text


def _seconds(value: object) -> str:
    return duration(timedelta(seconds=float(str(value)))) if value is not None else "-"


def incident_panel(inc: Incident, events: list[Event], now: datetime) -> Panel:
    """The `show` view: every field, deadlines in the policy's time zone, roles, recent events."""
    tz = zone(inc.get("timezone"))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()

    def row(label: str, value: RenderableType | str | None) -> None:
        grid.add_row(label, value if isinstance(value, Text | Table) else Text(str(value or "-")))

    sla, roles = inc["sla"], inc["roles"]
    row("Severity", severity(inc["severity"]))
    row("Status", status(inc["status"]))
    row("Source", inc["source"])
    row("Customer-facing", "yes" if inc["customer_facing"] else "no (internal)")
    row("Services", ", ".join(inc["services"]))
    row("Components", ", ".join(inc["components"]))
    row("Channel", inc["channel"])
    row("Description", inc["description"])
    for label, key in (
        ("Detected", "detected_at"),
        ("Acknowledged", "acknowledged_at"),
        ("Mitigated", "mitigated_at"),
        ("Resolved", "resolved_at"),
        ("Closed", "closed_at"),
        ("Last update", "last_update_at"),
    ):
        row(label, local(inc.get(key), tz))
    row("Created", f"{local(inc['created_at'], tz)} by {inc['created_by']}")
    row("Updated", local(inc["updated_at"], tz))
    for label, key in (
        ("Response due", "response_due_at"),
        ("Resolution due", "resolution_due_at"),
        ("Escalation due", "escalation_due_at"),
        ("Next update due", "next_update_due_at"),
        ("Status page due", "status_page_due_at"),
    ):
        row(label, _deadline(inc, key, tz, now))
    row("Time to acknowledge", _seconds(sla["time_to_acknowledge_seconds"]))
    row("Time to resolve", _seconds(sla["time_to_resolve_seconds"]))
    row("Commander", roles["commander"])
    row("Scribe", roles["scribe"])
    row("Communications", roles["communications"])
    row("Responders", ", ".join(roles["responders"]))
    row("Next statuses", ", ".join(inc["allowed_transitions"]) or "none (reopen it first)")
    row("Time zone", inc.get("timezone") or "UTC")
    parts: list[RenderableType] = [grid]
    if events:
        parts += [Text(f"\nLast {len(events)} timeline events", style="bold"), timeline(events, tz)]
    title = Text.assemble((inc["id"], "bold"), " ", Text(inc["title"]))
    return Panel(Group(*parts), title=title, title_align="left", expand=False)


def _event_body(event: Event) -> tuple[Text, str | None]:
    """What happened, on one line, plus command output to show beneath it."""
    kind, data = event["kind"], event["data"]
    text = Text()
    if kind == "declared":
        text.append("declared ").append_text(severity(str(data.get("severity", ""))))
        text.append(f" {data.get('title', '')}")
    elif kind == "status_change":
        text.append("reopened " if data.get("reopened") else "status ")
        text.append_text(status(str(data.get("from")))).append(" -> ").append_text(
            status(str(data.get("to")))
        )
        if data.get("note"):
            text.append(f": {data['note']}")
    elif kind == "severity_change":
        text.append("severity ").append_text(severity(str(data.get("from"))))
        text.append(" -> ").append_text(severity(str(data.get("to")))).append(f": {data.get('reason', '')}")
    elif kind == "role_change":
        if data.get("action") == "unassign":
            text.append(f"{data.get('person')} is no longer {data.get('role')}")
        else:
            text.append(f"role {data.get('role')}: {data.get('person')}")
            if data.get("previous"):
                text.append(f" (was {data['previous']})")
    elif kind == "hypothesis":
        state = str(data.get("state"))
        style = {"confirmed": "bold green", "refuted": "red"}.get(state, "yellow")
        text.append(f"hypothesis #{data.get('hypothesis')} ").append(state, style=style)
        text.append(f": {data.get('text', '')}")
        if data.get("result"):
            text.append(f" (result: {data['result']})")
    elif kind == "command":
        code = data.get("exit_code")
        text.append(f"$ {data.get('command', '')}", style="bold")
        if code is not None:
            text.append(f"  exit {code}", style="green" if code == 0 else "red")
        return text, str(data.get("output") or "")
    elif kind == "assignment":
        text.append(f"assigned {data.get('person')}: {data.get('task', '')}")
    elif kind == "action":
        text.append(f"action: {data.get('text', '')}")
    elif kind == "update":
        text.append(f"management update: {data.get('text', '')}")
    elif kind == "note":
        text.append(f"note: {data.get('text', '')}")
    else:
        text.append(f"{kind}: {data}")
    return text, None


def _output(output: str) -> Text:
    lines = output.rstrip("\n").splitlines()
    shown = "\n".join(lines[:OUTPUT_LINES])
    text = Text(shown, style="dim")
    if len(lines) > OUTPUT_LINES:
        text.append(f"\n... {len(lines) - OUTPUT_LINES} more lines (--json shows all)", style="italic")
    return text


def timeline(events: list[Event], tz: tzinfo) -> Group:
    """The timeline, one readable line per event (seq, time, who, what); command output indented beneath."""
    parts: list[RenderableType] = []
    for event in events:
        body, output = _event_body(event)
        line = Text.assemble(
            (f"#{event['seq']:<4}", "dim"),
            (local(event["at"], tz, seconds=True), "cyan"),
            "  ",
            (str(event["actor"]), "bold"),
            "  ",
        )
        line.append_text(body)
        parts.append(line)
        if output:
            parts.append(Padding(_output(output), (0, 0, 0, 6)))
    return Group(*parts)
