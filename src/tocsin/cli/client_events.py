"""`tocsin incident note|hypothesis|command|update|action|assign`: add to an incident's timeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tocsin.cli import capture
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
    incident_ref,
)
from tocsin.cli.http import incident_path as path

Ref = Annotated[str, typer.Argument(metavar="ID", help="the incident: INC-42 or 42", show_default=False)]
Text = Annotated[str, typer.Argument(help="the text", show_default=False)]


def _recorded(ref: str, event: dict[str, Any], as_json: bool, what: str = "") -> None:
    if as_json:
        emit_json(event)
    else:
        typer.echo(f"recorded {what or event['kind']} as event #{event['seq']} on {incident_ref(ref)}")


def note(ref: Ref, text: Text, url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False) -> None:
    """Add a note to the timeline."""
    _recorded(ref, connect(url, token).post(f"{path(ref)}/notes", {"text": text}), as_json)


def action(ref: Ref, text: Text, url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False) -> None:
    """Record a mitigation or other action taken."""
    _recorded(ref, connect(url, token).post(f"{path(ref)}/actions", {"text": text}), as_json)


def update(ref: Ref, text: Text, url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False) -> None:
    """Post a management update; the next one falls due after the severity's cadence."""
    event = connect(url, token).post(f"{path(ref)}/updates", {"text": text})
    _recorded(ref, event, as_json, "management update")


def assign(
    ref: Ref,
    person: Annotated[str, typer.Argument(help="who", show_default=False)],
    task: Annotated[str, typer.Argument(help="what they are to do", show_default=False)],
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Assign a task to someone."""
    body = {"person": person, "task": task}
    _recorded(ref, connect(url, token).post(f"{path(ref)}/assignments", body), as_json, "assignment")


def hypothesis(
    ref: Ref,
    text: Annotated[
        str | None, typer.Argument(help="a new hypothesis to propose", show_default=False)
    ] = None,
    confirm: Annotated[int | None, typer.Option("--confirm", metavar="N", help="hypothesis N held")] = None,
    refute: Annotated[
        int | None, typer.Option("--refute", metavar="N", help="hypothesis N did not hold")
    ] = None,
    result: Annotated[str, typer.Option("--result", help="what showed it (with --confirm/--refute)")] = "",
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Propose a hypothesis (TEXT), or settle one: --confirm N or --refute N with --result."""
    given = [x for x in (text, confirm, refute) if x is not None]
    if len(given) != 1:
        fail("give either TEXT to propose a hypothesis, or --confirm N or --refute N", USAGE_ERROR)
    if text is not None and result:
        fail("--result goes with --confirm or --refute", USAGE_ERROR)
    api = connect(url, token)
    if text is not None:
        event = api.post(f"{path(ref)}/hypotheses", {"text": text})
        if as_json:
            emit_json(event)
            return
        number = event["data"]["hypothesis"]
        typer.echo(f"hypothesis #{number} proposed on {incident_ref(ref)}")
        typer.echo(
            f"settle it with: tocsin incident hypothesis {incident_ref(ref)} --confirm {number} --result ..."
        )
        return
    number, state = (confirm, "confirmed") if confirm is not None else (refute, "refuted")
    event = api.post(f"{path(ref)}/hypotheses/{number}", {"state": state, "result": result})
    if as_json:
        emit_json(event)
    else:
        typer.echo(f"hypothesis #{number} {state} on {incident_ref(ref)}: {event['data']['text']}")


def command(
    ref: Ref,
    line: Annotated[
        str, typer.Argument(metavar="COMMAND", help="the command line (quote it)", show_default=False)
    ],
    output: Annotated[str | None, typer.Option("--output", help="its output, as text")] = None,
    output_file: Annotated[
        Path | None,
        typer.Option(
            "--output-file", exists=True, dir_okay=False, readable=True, help="its output, from a file"
        ),
    ] = None,
    exit_code: Annotated[
        int | None, typer.Option("--exit-code", min=-255, max=255, help="its exit code (not with --run)")
    ] = None,
    run: Annotated[
        bool, typer.Option("--run", help="run it here (sh -c) and record output and exit code")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="with --run: kill it after this many seconds")
    ] = 60,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Record a command run during the incident, with its output (at most 200 KB) and exit code.

    With --run the command runs on this machine, in the shell; its output is shown and recorded.
    The exit code of `tocsin` is 0 once it is recorded, whatever the command's own exit code.
    """
    if sum((output is not None, output_file is not None, run)) > 1:
        fail("give at most one of --output, --output-file and --run", USAGE_ERROR)
    if run and exit_code is not None:
        fail("--exit-code is measured, not given, with --run", USAGE_ERROR)
    api = connect(url, token)
    text = capture.clean(output) if output is not None else ""
    if output_file is not None:
        text = capture.read_file(output_file)
    if run:
        api.get(path(ref))  # the incident exists and the token works: only then run anything
        captured = capture.run_shell(line, timeout)
        text, exit_code = captured.output, captured.exit_code
        if not as_json and text:
            typer.echo(text, nl=not text.endswith("\n"))
    event = api.post(f"{path(ref)}/commands", {"command": line, "output": text, "exit_code": exit_code})
    what = f"command (exit {exit_code})" if exit_code is not None else "command"
    _recorded(ref, event, as_json, what)


def register(app: typer.Typer) -> None:
    for fn in (note, hypothesis, command, update, action, assign):
        app.command(epilog=EXIT_CODES)(fn)
