"""Helpers shared by Tocsin's tests and by plugin authors: a fake clock, databases, users."""

from __future__ import annotations

import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from tocsin.alerts import integrations
from tocsin.alerts.integrations import IntegrationInfo
from tocsin.auth import service as auth
from tocsin.auth.roles import Role
from tocsin.core.clock import FakeClock
from tocsin.db import migrate
from tocsin.db.engine import Database
from tocsin.db.models import Base
from tocsin.policy.loader import load_policy_text
from tocsin.policy.models import Policy

__all__ = [
    "FakeClock",
    "bearer",
    "integration_key",
    "migrated_sqlite",
    "postgres_database",
    "reset",
    "running_server",
    "seed_policy_with",
    "user_with_token",
]


def migrated_sqlite(template: Path, target: Path) -> str:
    """Copy a migrated SQLite template to `target` (migrating the template on first use)."""
    if not template.exists():
        migrate.upgrade(f"sqlite:///{template}")
    shutil.copyfile(template, target)
    return f"sqlite+aiosqlite:///{target}"


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test run, dropped afterwards."""
    url = make_url(admin_url)
    name = f"tocsin_test_{secrets.token_hex(4)}"
    conninfo = f"host={url.host or '127.0.0.1'} port={url.port or 5432} user={url.username or 'postgres'} dbname={url.database or 'postgres'}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    test_url = url.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(test_url)
        yield test_url
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def reset(db: Database) -> None:
    """Empty every table (PostgreSQL tests share one migrated database)."""
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with db.engine.begin() as conn:
        # Nothing runs between tests: a connection of this database left idle in a transaction is an
        # earlier test's, abandoned mid-transaction (its event loop gone), and would hold TRUNCATE's
        # lock for ever. A lock still held past the timeout fails this test instead of hanging the run.
        await conn.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%%'"
        )
        await conn.exec_driver_sql("SET LOCAL lock_timeout = '60s'")
        await conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


async def user_with_token(
    db: Database, clock: FakeClock, name: str, role: Role, password: str | None = None
) -> str:
    """Create a user and return a fresh API token for it."""
    async with db.transaction() as session:
        user = await auth.create_user(session, clock, name=name, role=role, password=password)
        return await auth.create_token(session, clock, user, "test")


async def prometheus_integration(
    db: Database, clock: FakeClock, policy: Policy, service: str | None = None
) -> IntegrationInfo:
    """A Prometheus integration named "prom", made in the database directly."""
    async with db.transaction() as session:
        row, _ = await integrations.create(
            session,
            clock,
            policy,
            name="prom",
            kind="prometheus",
            service=service,
            severity_rules=[],
            actor="t",
        )
        return integrations.info(row)


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for an API token."""
    return {"Authorization": f"Bearer {token}"}


async def integration_key(client: Any, admin: str, name: str, kind: str) -> str:
    """Make an integration through the API (`client`: an httpx.AsyncClient on the app) as the admin
    holding that token; its key."""
    r = await client.post("/api/v1/integrations", json={"name": name, "kind": kind}, headers=bearer(admin))
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


@contextmanager
def running_server(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free 127.0.0.1 port in a thread; yields its base URL."""
    import threading
    import time

    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, ws="none", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="tocsin-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def seed_policy_with(extra: str, filename: str = "test.yaml") -> Policy:
    """The built-in policy with top-level sections added or replaced by the YAML text `extra`."""
    seed = resources.files("tocsin.policy").joinpath("default.yaml").read_text(encoding="utf-8")
    for key in re.findall(r"^([a-z_]+):", extra, flags=re.M):
        seed = re.sub(rf"^{key}: \[\]\n", "", seed, flags=re.M)  # the seed's empty placeholder
    return load_policy_text(seed + extra, filename)


@contextmanager
def served(database_url: str, admin_token: str) -> Iterator[str]:
    """A real Tocsin HTTP server on a free port with an admin holding `admin_token`; yields its URL.

    Its clock is a FakeClock set to the wall clock, so a CLI's countdowns agree with the server's.
    """
    import asyncio

    from tocsin.app import build_runtime, create_app
    from tocsin.config import Settings

    async def prepare() -> None:
        db = Database(database_url)
        try:
            if not db.is_sqlite:
                await reset(db)
            async with db.transaction() as session:
                await auth.bootstrap(session, FakeClock(), admin_token)
        finally:
            await db.dispose()

    asyncio.run(prepare())
    # The engine connects lazily: built here, used only on the server thread's event loop.
    rt = build_runtime(
        Settings(database_url=database_url, background=False), clock=FakeClock(datetime.now(UTC))
    )
    with running_server(create_app(runtime=rt)) as url:
        yield url
