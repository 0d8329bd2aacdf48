"""`tocsin serve` as a real subprocess: migrate, bootstrap the admin once, answer the seed's commands."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

import tocsin.policy
from tocsin.testing import bearer, postgres_database

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


def test_integrations_declared_in_the_policy_follow_it_at_every_start(tmp_path: Path) -> None:
    """Created with the keys their variables hold, re-keyed when a variable changes, disabled when
    taken out of the policy; the API leaves them to the policy."""
    seed = yaml.safe_load((Path(tocsin.policy.__file__).parent / "default.yaml").read_text())

    def policy(*names: str) -> str:
        declared = [
            {"name": name, "kind": "generic", "service": "portal", "key_env": f"{name.upper()}_KEY"}
            for name in names
        ]
        data = {**seed, "alerting": {**seed["alerting"], "integrations": declared}}
        (tmp_path / "tocsin.yaml").write_text(yaml.safe_dump(data))
        return "tocsin.yaml"

    def sent(url: str, key: str) -> int:
        body = {"summary": "Checkout broken", "severity": "critical"}
        return httpx.post(f"{url}/api/v1/integrations/generic", json=body, headers=bearer(key)).status_code

    admin = "tsn_policy-integrations-admin"
    first = {"TOCSIN_BOOTSTRAP_TOKEN": admin, "TOCSIN_POLICY": policy("shop", "jobs")}
    with serving(tmp_path, **first, SHOP_KEY="shop-key-1", JOBS_KEY="jobs-key-1") as (url, log):
        assert sent(url, "shop-key-1") == 202 and sent(url, "jobs-key-1") == 202
        listed = httpx.get(f"{url}/api/v1/integrations", headers=bearer(admin)).json()
        assert {r["name"]: r["from_policy"] for r in listed} == {"shop": True, "jobs": True}
        for change in (
            httpx.delete(f"{url}/api/v1/integrations/shop", headers=bearer(admin)),
            httpx.post(f"{url}/api/v1/integrations/shop/key", headers=bearer(admin)),
        ):
            assert change.status_code == 409 and "declared in the policy" in change.json()["error"]["message"]
    again = {"TOCSIN_BOOTSTRAP_TOKEN": admin, "TOCSIN_POLICY": policy("shop")}
    with serving(tmp_path, **again, SHOP_KEY="shop-key-2") as (url, log):
        assert sent(url, "shop-key-1") == 401 and sent(url, "shop-key-2") == 202  # re-keyed
        assert sent(url, "jobs-key-1") == 401  # no longer in the policy
        assert "integration jobs: no longer in the policy; disabled" in log.read_text()
    back = {"TOCSIN_BOOTSTRAP_TOKEN": admin, "TOCSIN_POLICY": policy("shop", "jobs")}
    with serving(tmp_path, **back, SHOP_KEY="jobs-key-1") as (url, log):
        assert sent(url, "jobs-key-1") == 401  # declared again, but its variable is not set
        text = log.read_text()
        assert "integration jobs: environment variable JOBS_KEY is not set" in text
        assert sent(url, "shop-key-2") == 202  # the variable's new value is jobs' old key: not taken
        assert "integration shop: the key in SHOP_KEY is integration jobs's" in text


def test_bootstrap_token_from_the_environment(tmp_path: Path) -> None:
    with serving(tmp_path, TOCSIN_BOOTSTRAP_TOKEN="automation-secret-123") as (url, _):
        r = httpx.get(f"{url}/api/v1/me", headers=bearer("automation-secret-123"))
        assert r.status_code == 200 and r.json()["role"] == "admin"
        monitoring = httpx.get(f"{url}/api/monitoring?type=health").json()
        assert monitoring["summary"]["status"] == "ok"


def _workers(log: Path, at_least: int) -> list[int]:
    """The worker processes uvicorn says it started, once there are `at_least` of them (30 s at most)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = [int(p) for p in re.findall(r"Started server process \[(\d+)\]", log.read_text())]
        if len(pids) >= at_least:
            return pids
        time.sleep(0.1)
    raise AssertionError(log.read_text())


@contextmanager
def database(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'var' / 'tocsin.db'}"
        return
    admin = os.environ.get("TOCSIN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
    with postgres_database(admin) as url:
        yield url


LISTEN, ESTABLISHED = "0A", "01"  # TCP states as /proc/net/tcp writes them


def _sockets(pid: int, port: int, state: str = ESTABLISHED) -> int:
    """How many TCP sockets on `port` in `state` process `pid` holds (from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                inodes.add(fields[9])
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        held += target.startswith("socket:[") and target[8:-1] in inodes
    return held


def test_workers_take_an_even_share_of_a_burst_of_connections(tmp_path: Path) -> None:
    """Each worker listens on a socket of its own (SO_REUSEPORT): 32 connections opened at once spread
    over both, where one shared socket let the worker that woke first accept them all."""
    with serving(tmp_path, TOCSIN_WORKERS="2") as (url, log):
        workers = _workers(log, 2)
        port = int(url.rsplit(":", 1)[1])
        deadline = time.monotonic() + 30  # a worker logs its start before its socket listens
        while not all(_sockets(pid, port, LISTEN) for pid in workers):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
        try:
            for client in clients:
                client.sendall(b"GET /api/health HTTP/1.1\r\nHost: tocsin\r\n\r\n")
            for client in clients:
                client.settimeout(10)
                assert client.recv(12).startswith(b"HTTP/1.1")
            shares = [_sockets(pid, port) for pid in workers]
            assert sum(shares) == 32 and min(shares) >= 4, shares
        finally:
            for client in clients:
                client.close()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_taken_by_another_program_fails_the_start(tmp_path: Path, workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        environ = {**os.environ, "TOCSIN_PORT": str(port), "TOCSIN_WORKERS": workers, "COLUMNS": "200"}
        done = subprocess.run(
            [sys.executable, "-m", "tocsin", "serve"],
            cwd=tmp_path,
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "in use" in (done.stdout + done.stderr).lower()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_workers_share_the_port_and_a_worker_that_dies_is_replaced(tmp_path: Path, backend: str) -> None:
    token = "workers-token-123456"
    env = {"TOCSIN_WORKERS": "2", "TOCSIN_BOOTSTRAP_TOKEN": token}
    with (
        database(backend, tmp_path) as database_url,
        serving(tmp_path, TOCSIN_DATABASE_URL=database_url, **env) as (
            url,
            log,
        ),
    ):
        first, second = _workers(log, 2)[:2]
        r = httpx.post(
            f"{url}/api/v1/integrations", json={"name": "p", "kind": "prometheus"}, headers=bearer(token)
        )
        key = r.json()["key"]

        def send(i: int) -> int:
            with (
                httpx.Client() as client
            ):  # a connection of its own: the kernel spreads them over the workers
                alert = [{"labels": {"alertname": "Down", "instance": f"i{i}"}}]
                return client.post(f"{url}/api/v2/alerts", json=alert, headers=bearer(key)).status_code

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(send, range(40))) == [200] * 40
        os.kill(first, signal.SIGKILL)
        replacement = _workers(log, 3)[2]
        assert replacement not in (first, second)
        deadline = time.monotonic() + 30
        while send(40) != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(send, range(41, 61))) == [200] * 20
        alerts = httpx.get(f"{url}/api/v1/alerts", params={"limit": 500}, headers=bearer(token)).json()
        assert len({a["dedup_key"] for a in alerts}) == 61
        incidents = httpx.get(f"{url}/api/v1/incidents", headers=bearer(token)).json()
        assert incidents["total"] == 1  # one group, one incident, whichever worker took its first alert
