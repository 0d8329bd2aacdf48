"""Concurrent writers: distinct channel names, one unbroken hash chain."""

from __future__ import annotations

import asyncio

import httpx

from tocsin.testing import bearer


async def test_concurrent_declarations_get_distinct_channels(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    h = bearer(tokens["responder"])
    replies = await asyncio.gather(
        *(
            client.post("/api/v1/incidents", json={"title": "Login broken", "severity": "P1"}, headers=h)
            for _ in range(8)
        )
    )
    assert [r.status_code for r in replies] == [201] * 8
    channels = {r.json()["channel"] for r in replies}
    assert len(channels) == 8 and "#incident-2026-11-26-login-broken" in channels


async def test_concurrent_notes_keep_the_chain_intact(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    h = bearer(tokens["responder"])
    ref = (await client.post("/api/v1/incidents", json={"title": "x", "severity": "P2"}, headers=h)).json()[
        "id"
    ]
    replies = await asyncio.gather(
        *(
            client.post(f"/api/v1/incidents/{ref}/notes", json={"text": f"note {i}"}, headers=h)
            for i in range(20)
        )
    )
    assert sorted(r.json()["seq"] for r in replies) == list(range(2, 22))
    verify = (await client.get(f"/api/v1/incidents/{ref}/verify", headers=h)).json()
    assert verify["intact"] is True and verify["events"] == 21
