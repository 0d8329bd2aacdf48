"""The storm lane (`alerts/fastlane.py`) writes what the full path writes, and steps aside when it must."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from tocsin.alerts import fastlane
from tocsin.alerts.models import Alert, AlertGroup, Integration
from tocsin.db.raw import Raw, Step
from tocsin.incidents.models import Incident, TimelineEvent
from tocsin.runtime import Runtime
from tocsin.testing import FakeClock, bearer

# (seconds to wait first, [(instance, severity), ...] of one request, whether the storm lane takes it)
SCENARIO: list[tuple[int, list[tuple[str, str]], bool]] = [
    (0, [("a", "warning"), ("b", "warning"), ("c", "warning")], False),  # opens the incident
    (5, [(f"n{i}", "warning") for i in range(10)], True),  # a storm into the open incident
    (5, [("a", "warning"), ("n1", "warning"), ("n2", "warning"), ("x", "warning"), ("y", "info")], True),
    (5, [("z", "warning"), ("z", "warning")], True),  # a new alert repeated within its own request
    (5, [("crit", "critical")], False),  # the incident's severity rises
    (5, [("after", "warning")], True),
    (61, [("late", "warning")], False),  # the timeline is due a note of the storm
    (5, [("q", "warning"), ("crit", "critical")], True),  # re-sends and a new alert
]


def body(clock: FakeClock, alerts: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    now = clock.now()
    return [
        {
            "labels": {
                "alertname": "InstanceDown",
                "instance": instance,
                "severity": severity,
                "job": "node",
            },
            "annotations": {"summary": f"{instance} is down", "description": "no scrape"},
            "startsAt": (now - timedelta(seconds=30)).isoformat(),
            "endsAt": (now + timedelta(minutes=4)).isoformat(),
            "generatorURL": "http://prometheus.local/graph?g0.expr=up",
        }
        for instance, severity in alerts
    ]


async def run(client: httpx.AsyncClient, clock: FakeClock, admin: str, service: str | None) -> list[bool]:
    """The scenario through one new integration; per request, whether the storm lane took it."""
    extra = {"service": service} if service else {}
    r = await client.post(
        "/api/v1/integrations",
        json={"name": f"prom-{service or 'none'}", "kind": "prometheus", **extra},
        headers=bearer(admin),
    )
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    with lane_watched() as taken:
        for wait, alerts, _ in SCENARIO:
            clock.advance(timedelta(seconds=wait))
            r = await client.post("/api/v2/alerts", json=body(clock, alerts), headers=bearer(key))
            assert r.status_code == 200, r.text
    return taken


async def storm_opened(client: httpx.AsyncClient, clock: FakeClock, admin: str, name: str) -> str:
    """The key of a new integration of service `portal` whose first alert has opened an incident."""
    r = await client.post(
        "/api/v1/integrations",
        json={"name": name, "kind": "prometheus", "service": "portal"},
        headers=bearer(admin),
    )
    key: str = r.json()["key"]
    opened = await client.post(
        "/api/v2/alerts", json=body(clock, [("first", "warning")]), headers=bearer(key)
    )
    assert opened.status_code == 200
    return key


@contextlib.contextmanager
def lane_watched() -> Iterator[list[bool]]:
    """Whether the storm lane took each batch, in order, while in the block."""
    taken: list[bool] = []
    real = fastlane.apply

    async def watching(*args: Any) -> Any:
        done = await real(*args)
        taken.append(done is not None)
        return done

    fastlane.apply = watching  # type: ignore[assignment]
    try:
        yield taken
    finally:
        fastlane.apply = real  # type: ignore[method-assign]


def _since(start: datetime, value: Any) -> Any:
    return (value - start).total_seconds() if isinstance(value, datetime) else value


async def written(rt: Runtime, integration: str, start: datetime) -> dict[str, Any]:
    """What the scenario wrote for one integration, less what differs by design: ids, names, the service
    (one run has one, the other not) and the instants (each run has its own start)."""
    async with rt.db.session() as session:
        integration_id = await session.scalar(select(Integration.id).where(Integration.name == integration))
        alerts = list(
            await session.scalars(
                select(Alert).where(Alert.integration_id == integration_id).order_by(Alert.id)
            )
        )
        incident_ids = sorted({a.incident_id for a in alerts if a.incident_id})
        incidents = [await session.get(Incident, i) for i in incident_ids]
        groups = list(
            await session.scalars(select(AlertGroup).where(AlertGroup.incident_id.in_(incident_ids)))
        )
        events = list(
            await session.scalars(
                select(TimelineEvent)
                .where(TimelineEvent.incident_id.in_(incident_ids))
                .order_by(TimelineEvent.incident_id, TimelineEvent.seq)
            )
        )
    skip = {"id", "integration_id", "incident_id", "service"}
    return {
        "alerts": [
            {
                **{
                    c: _since(start, getattr(a, c))
                    for c in [col.name for col in Alert.__table__.columns]
                    if c not in skip
                },
                "labels": {k: v for k, v in a.labels.items() if k != "service"},
                "incident": incident_ids.index(a.incident_id) if a.incident_id else None,
            }
            for a in alerts
        ],
        "incidents": [(i.severity, i.status, _since(start, i.detected_at)) for i in incidents if i],
        "groups": [
            tuple(_since(start, v) for v in (g.alert_count, g.told, g.told_at, g.last_alert_at, g.opened_at))
            for g in groups
        ],
        "events": [
            (
                e.kind,
                _since(start, e.at),
                {k: v for k, v in e.data.items() if k in ("opened", "total", "grouped", "silenced", "to")},
            )
            for e in events
            if e.kind in ("alert", "severity_change", "declared")
        ],
    }


@pytest.mark.parametrize("shared", [False, True], ids=["one-process", "workers"])
async def test_the_storm_lane_writes_what_the_full_path_writes(
    client: httpx.AsyncClient,
    rt: Runtime,
    clock: FakeClock,
    tokens: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    shared: bool,
) -> None:
    rt.db.shared = shared  # as with `tocsin serve --workers`: on SQLite the lane reads ahead of its turn
    start = clock.now()
    taken = await run(client, clock, tokens["admin"], "portal")
    assert taken == [expected for _, _, expected in SCENARIO]
    laned = await written(rt, "prom-portal", start)

    # The same again through a new integration (its own group), with the lane closed: all full path.
    async def closed(*args: Any) -> None:
        return None

    monkeypatch.setattr(fastlane, "apply", closed)
    clock.advance(timedelta(minutes=1))
    start = clock.now()
    assert not any(await run(client, clock, tokens["admin"], None))
    full = await written(rt, "prom-none", start)
    assert len(laned["alerts"]) == 20 and laned["events"]
    assert laned == full


async def test_large_batches_go_through_the_lane_in_chunks(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, tokens: dict[str, str]
) -> None:
    key = await storm_opened(client, clock, tokens["admin"], "prom-big")
    many = [(f"host-{i}", "warning") for i in range(1_200)]  # over the lane's 500 rows a statement
    with lane_watched() as taken:
        for _ in range(2):  # new, then re-sent
            clock.advance(timedelta(seconds=5))
            r = await client.post("/api/v2/alerts", json=body(clock, many), headers=bearer(key))
            assert r.status_code == 200, r.text
    assert taken == [True, True]
    async with rt.db.session() as session:
        counts = list(
            await session.execute(
                select(Alert.count, func.count()).where(Alert.summary.like("host-%")).group_by(Alert.count)
            )
        )
        group = await session.scalar(select(AlertGroup).order_by(AlertGroup.id.desc()))
    assert counts == [(2, 1_200)]
    assert group is not None and group.alert_count == 1_201


async def test_lane_commits_on_one_storm_share_its_locks(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, tokens: dict[str, str]
) -> None:
    """PostgreSQL: a storm-lane commit holds the group's lock and the incident's row shared. It goes
    through while another transaction holds them so (another lane commit on the same storm), and waits
    while one holds the group's lock alone (the full path, which may open an incident)."""
    if rt.db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's locks; SQLite writes one transaction at a time")
    key = await storm_opened(client, clock, tokens["admin"], "prom-locks")
    async with rt.db.session() as session:
        group = await session.scalar(select(AlertGroup).order_by(AlertGroup.id.desc()))
    assert group is not None
    lock = {"key": f"alert-group:{group.service}:{group.group_key}"}

    async def send(instance: str) -> httpx.Response:
        clock.advance(timedelta(seconds=1))
        return await client.post(
            "/api/v2/alerts", json=body(clock, [(instance, "warning")]), headers=bearer(key)
        )

    async with rt.db.engine.connect() as other:  # as another lane commit on this storm holds them
        await other.execute(text("SELECT pg_advisory_xact_lock_shared(hashtextextended(:key, 0))"), lock)
        await other.execute(
            text("SELECT id FROM incidents WHERE id = :id FOR SHARE"), {"id": group.incident_id}
        )
        with lane_watched() as taken:
            r = await asyncio.wait_for(send("beside"), 20)
        assert r.status_code == 200 and taken == [True]
        await other.rollback()

    async with rt.db.engine.connect() as other:  # as the full path holds it
        await other.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), lock)
        waiting = asyncio.create_task(send("behind"))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        await other.rollback()
        r = await asyncio.wait_for(waiting, 20)
        assert r.status_code == 200

    async with rt.db.session() as session:
        count = await session.scalar(select(AlertGroup.alert_count).where(AlertGroup.id == group.id))
    assert count == 3


async def test_new_alerts_read_their_groups_in_the_lookups_trip(
    client: httpx.AsyncClient,
    rt: Runtime,
    clock: FakeClock,
    tokens: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL: a batch none of whose keys the lane has written lately reads its groups with its
    lookup (two round trips, not three); one with such a key reads them once it knows which are new."""
    if rt.db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's lane runs in one call: no round trips to save")
    key = await storm_opened(client, clock, tokens["admin"], "prom-guess")
    trips: list[list[str]] = []
    real = Raw.run

    async def counted(self: Raw, *steps: Step) -> Any:
        trips.append([step.sql.split()[0] for step in steps])
        return await real(self, *steps)

    monkeypatch.setattr(Raw, "run", counted)

    async def send(*instances: str) -> list[list[str]]:
        trips.clear()
        clock.advance(timedelta(seconds=5))
        with lane_watched() as taken:
            r = await client.post(
                "/api/v2/alerts", json=body(clock, [(i, "warning") for i in instances]), headers=bearer(key)
            )
        assert r.status_code == 200 and taken == [True], r.text
        return list(trips)

    new = await send("g1", "g2")
    assert len(new) == 2 and len(new[0]) == 4  # lookup, silences, the group's lock and rows; writes
    assert new[1][-1] == "COMMIT"
    again = await send("g1", "g2")  # re-sent: known to the lane, nothing guessed
    assert len(again) == 2 and len(again[0]) == 1
    mixed = await send("g1", "g3")  # one of them known: the groups after the lookup, for g3 alone
    assert [len(trip) for trip in mixed[:2]] == [1, 3] and len(mixed) == 3
    async with rt.db.session() as session:
        rows = list(
            await session.execute(
                select(Alert.dedup_key, Alert.count, Alert.incident_id).where(
                    Alert.summary.like("g% is down")
                )
            )
        )
        group = await session.scalar(select(AlertGroup).order_by(AlertGroup.id.desc()))
    assert sorted(count for _, count, _ in rows) == [1, 2, 3]
    assert group is not None and {incident for _, _, incident in rows} == {group.incident_id}
    assert group.alert_count == 4  # the first alert and g1, g2, g3


def test_the_lanes_guess_of_seen_keys_is_bounded() -> None:
    seen = fastlane.Seen()
    seen.add(1, ["a", "b"])
    assert seen.any_of(1, ["x", "b"]) and not seen.any_of(1, ["x"]) and not seen.any_of(2, ["a"])
    seen.add(1, ["a"])  # already there: not counted twice
    assert seen.size == 2
    seen.LIMIT = 3
    seen.add(2, ["c", "d"])
    assert seen.size == 0 and not seen.any_of(1, ["a"])
