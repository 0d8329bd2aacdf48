"""Commands that run next to the database: serve, db upgrade, policy check, token create."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.panel import Panel
from sqlalchemy.engine import make_url

from tocsin.alerts import integrations
from tocsin.auth import service as auth
from tocsin.auth.roles import Role
from tocsin.config import Settings
from tocsin.core.clock import SystemClock
from tocsin.core.errors import TocsinError
from tocsin.db import migrate
from tocsin.db.engine import Database
from tocsin.oncall.schedule import gap_warnings
from tocsin.policy.loader import PolicyError, default_policy, load_policy
from tocsin.policy.models import Policy

out = Console()
err = Console(stderr=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
policy_app = typer.Typer(help="The runbook policy (tocsin.yaml).", no_args_is_help=True)
token_app = typer.Typer(help="API tokens: create (on the server host), list, revoke.", no_args_is_help=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def load_settings() -> Settings:
    """The TOCSIN_* settings, or a one-line error naming the bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "TOCSIN_" + "_".join(str(p) for p in first["loc"]).upper()
        raise fail(f"{name}: {first['msg']}") from None


def _policy(settings: Settings) -> Policy:
    """The policy the settings name (else the built-in one); its errors printed as file:line, exit 1."""
    try:
        return load_policy(settings.policy) if settings.policy else default_policy()
    except PolicyError as exc:
        for issue in exc.issues:
            err.print(str(issue), highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1) from None


def shown(url: str) -> str:
    """A database URL fit for a log: the password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: show nothing of it
        return "(unparseable database URL)"


def upgrade() -> None:
    """Migrate the database to the newest schema."""
    settings = load_settings()
    try:
        migrate.upgrade(settings.database_url)
    except Exception as exc:  # a wrong URL or a down server is a one-line error, not a traceback
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise fail(f"cannot migrate {shown(settings.database_url)}: {detail}") from None
    out.print(f"database at {shown(settings.database_url)} is up to date", highlight=False)


def check(file: Annotated[Path, typer.Argument(help="the policy file to check")]) -> None:
    """Validate a policy file; every error names the file, line and field."""
    try:
        policy = load_policy(file)
    except PolicyError as exc:
        for issue in exc.issues:
            err.print(str(issue), highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    for warning in gap_warnings(policy, SystemClock().now()):
        err.print(f"{file}: warning: {warning}", highlight=False, markup=False, soft_wrap=True)
    services = len(policy.services)
    out.print(
        f"{file}: ok ({len(policy.severities)} severities, {services} service{'s' if services != 1 else ''})",
        highlight=False,
        soft_wrap=True,
    )


async def _create_token(user: str, name: str, role: str | None) -> str:
    settings = load_settings()
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            try:
                row = await auth.get_user(session, user)
            except TocsinError:
                if role is None:
                    raise
                row = await auth.create_user(session, SystemClock(), name=user, role=Role.parse(role))
            return await auth.create_token(session, SystemClock(), row, name)
    finally:
        await db.dispose()


def token_create(
    user: Annotated[str, typer.Option(help="the user the token acts as")] = "admin",
    name: Annotated[str, typer.Option(help="a label for the token")] = "cli",
    role: Annotated[str | None, typer.Option(help="create the user with this role if missing")] = None,
) -> None:
    """Create an API token directly in the database (on the server host); printed once."""
    try:
        token = asyncio.run(_create_token(user, name, role))
    except (TocsinError, ValueError) as exc:
        raise fail(str(exc)) from None
    out.print(token, highlight=False)


async def _bootstrap(settings: Settings, policy: Policy) -> tuple[auth.Bootstrap | None, list[str]]:
    """Create the first admin if none exists, and the integrations the policy declares."""
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            first = await auth.bootstrap(session, SystemClock(), settings.bootstrap_token)
            problems = await integrations.sync_policy(session, SystemClock(), policy)
        return first, problems
    finally:
        await db.dispose()


def serve(
    host: Annotated[str | None, typer.Option(help="address to bind (TOCSIN_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (TOCSIN_PORT)")] = None,
    smtp_listen: Annotated[
        str | None,
        typer.Option(
            metavar="HOST:PORT",
            help="also take user reports by email: an SMTP listener for the support address (TOCSIN_SMTP_LISTEN)",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="processes sharing the port (TOCSIN_WORKERS)"),
    ] = None,
) -> None:
    """Run the API, the console and the engine (migrates the database first), in one process or in
    several sharing the port."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from tocsin.reports.smtp import parse_listen
    from tocsin.web import listen
    from tocsin.web.protocol import DirectProtocol

    settings = load_settings()
    if host:
        settings.host = host
    if port:
        settings.port = port
    if smtp_listen:
        settings.smtp_listen = smtp_listen
    if workers:
        settings.workers = workers
    if settings.smtp_listen:
        try:
            parse_listen(settings.smtp_listen)
        except ValueError as exc:
            raise fail(f"--smtp-listen: {exc}") from None
    policy = _policy(settings)
    upgrade()
    first, problems = asyncio.run(_bootstrap(settings, policy))
    for problem in problems:
        err.print(f"warning: {problem}", highlight=False, markup=False, soft_wrap=True)
    url = f"http://{settings.host}:{settings.port}"
    if first is not None:
        out.print(
            Panel.fit(
                f"Console: {url}/login  user [bold]{first.user}[/bold]  password [bold]{first.password}[/bold]\n"
                + (
                    "API token: the one in TOCSIN_BOOTSTRAP_TOKEN"
                    if settings.bootstrap_token
                    else f"API token (shown once): [bold]{first.token}[/bold]"
                ),
                title="first start: admin created",
            ),
            highlight=False,
        )
        if not settings.bootstrap_token:
            out.print(f"export TOCSIN_URL={url} TOCSIN_TOKEN={first.token}", highlight=False, soft_wrap=True)
    out.print(f"Tocsin listening on {url}", highlight=False)
    if settings.smtp_listen:
        out.print(
            f"User reports by email: mail to {settings.support_address} via SMTP on {settings.smtp_listen}",
            highlight=False,
        )
    sys.stdout.flush()
    # The public page's rendered GETs and the alert ingest routes are answered by the protocol itself
    # (tocsin.web.protocol). The event loop is asyncio's own: under load, uvloop accepted new connections
    # one at a time, some a second late.
    options: dict[str, Any] = {
        "http": DirectProtocol,
        "loop": "asyncio",
        "log_level": "info",
        "access_log": False,
    }
    os.environ.update(_environment(settings))  # what the command line set, for the app factory
    if settings.workers == 1:
        from tocsin.app import serve_app

        uvicorn.run(serve_app(), host=settings.host, port=settings.port, **options)
    else:
        # Each worker is a whole `tocsin serve` (API, engine, status page) on the one port, built from
        # the same settings by `serve_app`, with a listening socket of its own (`tocsin.web.listen`);
        # uvicorn's supervisor restarts a worker that dies.
        config = uvicorn.Config(
            "tocsin.app:serve_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            **options,
        )
        try:
            port_held = listen.reserved(settings.host, settings.port)
        except OSError as exc:
            raise fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}", 3) from None
        with port_held:
            Multiprocess(config, sockets=[listen.ReusePort(settings.host, settings.port)]).run()  # type: ignore[list-item]


def _environment(settings: Settings) -> dict[str, str]:
    """The command line's settings as TOCSIN_* variables, for the app factory (and the workers)."""
    values = {
        "TOCSIN_HOST": settings.host,
        "TOCSIN_PORT": str(settings.port),
        "TOCSIN_WORKERS": str(settings.workers),
    }
    if settings.smtp_listen:
        values["TOCSIN_SMTP_LISTEN"] = settings.smtp_listen
    return values


async def _work(settings: Settings, policy: Policy) -> None:
    import signal

    from tocsin.app import build_runtime, register_engine

    rt = build_runtime(settings, policy=policy)
    register_engine(rt)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    rt.start()
    try:
        await stop.wait()
    finally:
        await rt.stop()
        await rt.db.dispose()


def worker() -> None:
    """Run only the engine (timers, paging, escalation, reminders, the outbox sender), to scale out.

    Any number of workers share the database with `tocsin serve`: each timer and each message is claimed
    by one of them, inside a write transaction (PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED; SQLite:
    the turn to write the file, which every process takes before it reads what it will claim).
    """
    settings = load_settings()
    policy = _policy(settings)
    upgrade()
    out.print(f"Tocsin worker on {shown(settings.database_url)}", highlight=False)
    asyncio.run(_work(settings, policy))


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(worker)
    db_app.command("upgrade")(upgrade)
    policy_app.command("check")(check)
    token_app.command("create")(token_create)
    app.add_typer(db_app, name="db")
    app.add_typer(policy_app, name="policy")
    app.add_typer(token_app, name="token")
