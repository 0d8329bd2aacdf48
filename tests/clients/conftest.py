"""Fixtures for the real-client tests: a `tocsin serve` subprocess on SQLite or on a fresh PostgreSQL database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.harness import ALERTMANAGER, NGINX, PROMETHEUS, Tocsin, serving
from tocsin.testing import postgres_database

PG_ADMIN_URL = os.environ.get("TOCSIN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session", autouse=True)
def debian_peers() -> None:
    missing = [p for p in (PROMETHEUS, ALERTMANAGER, NGINX) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/system-deps.sh (make test does)")


@pytest.fixture(params=["sqlite", "postgres"])
def server_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL for a `tocsin serve` subprocess: an SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'tocsin.db'}"
        return
    with postgres_database(PG_ADMIN_URL) as url:
        yield url


@pytest.fixture
def tocsin(tmp_path: Path, server_database: str) -> Iterator[Tocsin]:
    """A running `tocsin serve` with an admin token, once on SQLite and once on PostgreSQL."""
    with serving(tmp_path, server_database) as running:
        yield running


@pytest.fixture
def sqlite_tocsin(tmp_path: Path) -> Iterator[Tocsin]:
    """A running `tocsin serve` on SQLite only, for the tests whose peer is slow to start talking."""
    with serving(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'tocsin.db'}") as running:
        yield running
