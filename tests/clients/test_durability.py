"""A 2xx means committed: kill -9 `tocsin serve` right after a 2xx, restart it, and every 2xx'd alert is there.

On SQLite and PostgreSQL, one alert at a time and with 50 requests in flight.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from clients.harness import Tocsin
from tocsin.testing import bearer

pytestmark = pytest.mark.slow


def summaries(tocsin: Tocsin) -> set[str]:
    alerts = tocsin.alerts("open", limit=1000)
    assert len(alerts) < 1000, "more alerts than one page: the check would be incomplete"
    return {a["summary"] for a in alerts}


def generic(name: str) -> dict[str, Any]:
    return {"summary": name, "dedup_key": name, "severity": "warning", "source": "durability"}


def prometheus(*names: str) -> list[dict[str, Any]]:
    return [
        {"labels": {"alertname": "Durability", "instance": n}, "annotations": {"summary": n}} for n in names
    ]


def test_kill_9_right_after_a_2xx_loses_nothing(tmp_path: Path, server_database: str) -> None:
    tocsin = Tocsin(tmp_path, server_database)
    committed: list[str] = []
    try:
        tocsin.start()
        generic_key, v2_key = tocsin.integration("generic"), tocsin.integration("prometheus")
        with httpx.Client(base_url=tocsin.url, timeout=10) as sender:
            # One at a time, alternating Tocsin's own webhook and the Alertmanager v2 endpoint Prometheus uses.
            for i in range(random.randint(5, 30)):
                name = f"alert-{i}"
                if i % 2:
                    r = sender.post("/api/v2/alerts", json=prometheus(name), headers=bearer(v2_key))
                else:
                    r = sender.post(
                        "/api/v1/integrations/generic", json=generic(name), headers=bearer(generic_key)
                    )
                assert r.is_success, r.text
                committed.append(name)
            tocsin.kill()  # right after the last 2xx: nothing has had time to happen since
        tocsin.start()
        missing = set(committed) - summaries(tocsin)
        assert not missing, f"acknowledged with a 2xx, then lost: {sorted(missing)}"
    finally:
        tocsin.close()


async def stream(tocsin: Tocsin, keys: tuple[str, str], kill_after: int) -> tuple[list[str], int]:
    """50 senders in flight; kill -9 the server once `kill_after` requests got their 2xx."""
    committed: list[str] = []
    failed = 0
    killed = asyncio.Event()
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)

    async def sender(client: httpx.AsyncClient, n: int) -> None:
        nonlocal failed
        for i in range(1000):
            names = [f"sender-{n}-request-{i}-alert-{j}" for j in range(1 + n % 3)]
            try:
                if n % 2:
                    r = await client.post("/api/v2/alerts", json=prometheus(*names), headers=bearer(keys[1]))
                else:
                    body = generic(names[0])
                    names = names[:1]
                    r = await client.post("/api/v1/integrations/generic", json=body, headers=bearer(keys[0]))
            except httpx.TransportError:
                failed += 1
                return
            assert r.is_success, r.text
            committed.extend(names)
            if len(committed) >= kill_after and not killed.is_set():
                killed.set()
                tocsin.kill()
            if killed.is_set():
                return

    async with httpx.AsyncClient(base_url=tocsin.url, timeout=10, limits=limits) as client:
        await asyncio.wait_for(asyncio.gather(*(sender(client, n) for n in range(50))), 60)
    assert killed.is_set(), "the senders finished before the kill"
    return committed, failed


def test_kill_9_with_50_requests_in_flight_loses_nothing(tmp_path: Path, server_database: str) -> None:
    tocsin = Tocsin(tmp_path, server_database)
    try:
        tocsin.start()
        keys = tocsin.integration("generic"), tocsin.integration("prometheus")
        committed, failed = asyncio.run(stream(tocsin, keys, kill_after=200 + secrets.randbelow(200)))
        assert failed > 0, "no request was in flight at the kill: the test proved nothing"
        tocsin.start()
        found = summaries(tocsin)
        missing = set(committed) - found
        assert not missing, (
            f"{len(missing)} alerts acknowledged with a 2xx, then lost: {sorted(missing)[:10]}"
        )
        # What was in flight may or may not have been committed; nothing else appears.
        assert all(name.startswith("sender-") for name in found)
    finally:
        tocsin.close()
