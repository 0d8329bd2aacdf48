"""`tocsin serve` as a real subprocess: migrate, bootstrap the admin once, answer the seed's commands."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tocsin.testing import bearer

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(tmp_path: Path, **env: str) -> Iterator[tuple[str, Path]]:
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    environ = {**os.environ, "TOCSIN_PORT": str(port), "COLUMNS": "200", **env}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tocsin", "serve"],
            cwd=tmp_path,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError(log.read_text())
        yield url, log
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_first_start_prints_a_working_token_once(tmp_path: Path) -> None:
    with serving(tmp_path) as (url, log):
        text = log.read_text()
        token = re.search(r"TOCSIN_TOKEN=(tsn_\S+)", text)
        assert token, text
        assert (tmp_path / "var" / "tocsin.db").exists()
        me = httpx.get(f"{url}/api/v1/me", headers=bearer(token.group(1)))
        assert me.json()["role"] == "admin"
        r = httpx.post(
            f"{url}/api/v1/incidents",
            json={"title": "Complete application outage", "severity": "P0"},
            headers=bearer(token.group(1)),
        )
        assert r.status_code == 201 and r.json()["id"] == "INC-1"
    with serving(tmp_path) as (url, log):
        assert "TOCSIN_TOKEN=" not in log.read_text()
        assert httpx.get(f"{url}/api/v1/incidents/INC-1", headers=bearer(token.group(1))).status_code == 200


def test_bootstrap_token_from_the_environment(tmp_path: Path) -> None:
    with serving(tmp_path, TOCSIN_BOOTSTRAP_TOKEN="automation-secret-123") as (url, _):
        r = httpx.get(f"{url}/api/v1/me", headers=bearer("automation-secret-123"))
        assert r.status_code == 200 and r.json()["role"] == "admin"
        monitoring = httpx.get(f"{url}/api/monitoring?type=health").json()
        assert monitoring["summary"]["status"] == "ok"
