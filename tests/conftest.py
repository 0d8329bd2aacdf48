"""Fixtures: every test that takes `db` runs on SQLite and on PostgreSQL, with a fake clock."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tocsin.app import build_runtime, create_app
from tocsin.auth.roles import Role
from tocsin.config import Settings
from tocsin.db.engine import Database
from tocsin.runtime import Runtime
from tocsin.testing import FakeClock, migrated_sqlite, postgres_database, reset, user_with_token

PG_ADMIN_URL = os.environ.get("TOCSIN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("template") / "template.db"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_database(PG_ADMIN_URL) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "sqlite":
        return migrated_sqlite(sqlite_template, tmp_path / "tocsin.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    if not database.is_sqlite:
        await reset(database)
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def rt(db: Database, clock: FakeClock) -> Runtime:
    return build_runtime(Settings(database_url=db.url), clock=clock, db=db)


@pytest.fixture
async def client(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime=rt)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tocsin.test") as c:
        yield c


@pytest.fixture
async def tokens(rt: Runtime, clock: FakeClock) -> dict[str, str]:
    """An API token for one user of each role, keyed by role name."""
    return {role.name: await user_with_token(rt.db, clock, f"{role.name}-user", role) for role in Role}
