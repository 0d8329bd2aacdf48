"""`tocsin incident ...`: placeholder until the client commands land."""

from __future__ import annotations

import typer

app = typer.Typer(help="Declare and work incidents (talks HTTP to TOCSIN_URL with TOCSIN_TOKEN).", no_args_is_help=True)
