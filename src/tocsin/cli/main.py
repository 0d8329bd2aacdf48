"""The `tocsin` command: server-side commands here, HTTP client commands in their own modules."""

from __future__ import annotations

import typer

from tocsin.cli import client_alerts, client_auth, client_incidents, client_oncall, client_status, server

app = typer.Typer(
    name="tocsin",
    help="Tocsin: self-hosted incident response. The runbook, as software.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
server.register(app)
app.add_typer(client_incidents.app, name="incident")
app.add_typer(client_alerts.integration_app, name="integration")
app.add_typer(client_alerts.silence_app, name="silence")
app.add_typer(client_alerts.alert_app, name="alert")
app.add_typer(client_oncall.app, name="oncall")
app.add_typer(client_status.app, name="status")
client_auth.register(app, tokens=server.token_app)
