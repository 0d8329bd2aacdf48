"""kill -9 `tocsin worker` processes mid-escalation: every page of every step reaches its webhook once.

Two real `tocsin worker` processes share a fresh PostgreSQL database. The policy's deadlines are seconds
long: a P1 must be acknowledged within 2 s, then a three-step chain pages one person per step, 5 s apart.
Everyone's only contact is a webhook to a receiver in this test, which checks the HMAC signature and
records every request by Idempotency-Key and by the (person, step) of its JSON body.

1. Right after step 1's page is delivered (the receiver has answered 200), both workers are killed -9.
2. Step 2 comes due with no worker running; the outage is stretched to 90 s by moving the pending step
   timer back (a test cannot wait a real minute; the timeline mentions lateness only from one minute).
   Both workers start again: step 2 fires once, late, and its timeline entry says `late_by`.
3. Between steps 2 and 3 one worker is killed -9; the other fires step 3 on time; the killed one is
   started again after step 3 was due, and pages nobody a second time.

A page the kill caught in flight (sent, answer not yet recorded) is sent again when its outbox lease
(2 minutes) runs out, with the same Idempotency-Key so the receiver can drop it: the test makes the lease
run out at once and checks exactly that. Every other page arrives once; no outbox row is left to send.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from clients.conftest import PG_ADMIN_URL
from clients.harness import spawn, stop, wait_for
from tocsin.core.clock import SystemClock
from tocsin.db.engine import Database
from tocsin.incidents import schemas
from tocsin.incidents import service as incidents
from tocsin.notify.channels.webhook import verify_signature
from tocsin.policy.loader import load_policy
from tocsin.testing import postgres_database

pytestmark = pytest.mark.slow

SECRET = "chaos-webhook-secret"
TOCSIN = str(Path(sys.executable).with_name("tocsin"))  # the venv's entry point
STEP_DELAY = 5  # seconds between chain steps
STRETCH = timedelta(seconds=90)  # how much longer the outage of step 2 is made to look
ASSEMBLY = "assembly"
STEPS = [f"escalation:chaos:0:{i}" for i in range(3)]
EXPECTED = {("pat", ASSEMBLY), ("sam", STEPS[0]), ("max", STEPS[1]), ("dee", STEPS[2])}


def policy_text(receiver: str) -> str:
    return f"""
organization: Chaos test
timezone: UTC
channels: {{alerts: "#chaos-alerts"}}
severities:
  P1:
    name: High
    definition: Chaos test incidents
    response: 2s
    resolution: 4h
    escalate_after: none
    page: [primary]
    management_updates: none
  P2:
    name: Medium
    definition: Unused here
    response: 2h
    resolution: 24h
    escalate_after: none
    page: [primary]
    management_updates: none
escalation_chains:
  chaos:
    title: Chaos chain
    steps:
      - {{role: First responder, after: 0s}}
      - {{role: Manager, after: {STEP_DELAY}s}}
      - {{role: Director, after: {STEP_DELAY}s}}
paging:
  unacknowledged: chaos
  unresolved: []
  throttle: {{messages: 50, per: 10m}}
people:
  - {{name: pat, webhook: "{receiver}/pat"}}
  - {{name: sam, webhook: "{receiver}/sam", titles: [First responder]}}
  - {{name: max, webhook: "{receiver}/max", titles: [Manager]}}
  - {{name: dee, webhook: "{receiver}/dee", titles: [Director]}}
teams:
  - name: chaos
    services: [portal]
    rotations:
      - {{name: chaos-primary, layer: primary, members: [pat], handoff: weekly, start: "2026-01-05 09:00"}}
services:
  - {{name: portal, title: Portal}}
"""


class Receiver:
    """A webhook receiver on 127.0.0.1: checks the signature, records every request, answers 200.

    `after_delivery(record)` runs in the request's thread once the 200 has been written and flushed.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.after_delivery: Callable[[dict[str, Any]], None] | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                signed = verify_signature(
                    SECRET,
                    self.headers.get("X-Tocsin-Timestamp", ""),
                    body,
                    self.headers.get("X-Tocsin-Signature", ""),
                    datetime.now(UTC),
                )
                payload = json.loads(body)
                record = {
                    "key": self.headers.get("Idempotency-Key"),
                    "person": payload.get("person"),
                    "step": payload.get("step"),
                    "path": self.path,
                    "at": time.time(),
                }
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.wfile.flush()
                with receiver.lock:
                    receiver.bad_signatures += not signed
                    receiver.received.append(record)
                    hook = receiver.after_delivery
                if hook is not None:
                    hook(record)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def deliveries(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.received)

    def got(self, person: str, step: str) -> dict[str, Any] | None:
        return next((r for r in self.deliveries() if (r["person"], r["step"]) == (person, step)), None)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Workers:
    """`tocsin worker` subprocesses by slot, each started and killed -9 on demand."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir, self.env = workdir, env
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.every: list[subprocess.Popen[bytes]] = []  # all started, to reap the killed ones too
        self.starts = 0

    def start(self, slot: int) -> None:
        self.starts += 1
        log = self.workdir / f"worker-{slot}.log"
        self.procs[slot] = spawn([TOCSIN, "worker"], log, self.workdir, self.env)
        self.every.append(self.procs[slot])

    def kill(self, slot: int) -> None:
        """kill -9: nothing is flushed, nothing uncommitted survives."""
        proc = self.procs[slot]
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)

    def alive(self, slot: int) -> bool:
        return self.procs[slot].poll() is None

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.workdir.glob("worker-*.log"))
        )

    def close(self) -> None:
        for proc in self.every:
            stop(proc)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database: two workers need one (on SQLite `tocsin serve` is the only worker)."""
    with postgres_database(PG_ADMIN_URL) as url:
        yield url


class Db:
    """Plain SQL on the test database, to watch what the workers did."""

    def __init__(self, url: str) -> None:
        conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.conn = psycopg.connect(conninfo, autocommit=True)

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []

    def one(self, sql: str, *params: Any) -> Any:
        found = self.rows(sql, *params)
        return found[0][0] if found else None

    def listeners(self) -> int:
        return int(
            self.one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND query ILIKE 'LISTEN tocsin_timers%%'"
            )
        )

    def page_message(self, person: str, step: str) -> tuple[int, str, str, int] | None:
        """(id, idempotency key, status, attempts) of the outbox message paging `person` at `step`."""
        found = self.rows(
            "SELECT o.id, o.idempotency_key, o.status, o.attempts FROM outbox o"
            " JOIN pages p ON o.idempotency_key = 'page:' || p.id || ':0'"
            " WHERE p.person = %s AND p.step = %s",
            person,
            step,
        )
        return (int(found[0][0]), str(found[0][1]), str(found[0][2]), int(found[0][3])) if found else None

    def pending_step(self) -> tuple[datetime, int] | None:
        """(due_at, step index in the payload) of the chain's pending step timer."""
        found = self.rows(
            "SELECT due_at, payload FROM timers WHERE kind = 'escalation.step' AND fired_at IS NULL"
        )
        if not found:
            return None
        payload = found[0][1] if isinstance(found[0][1], dict) else json.loads(found[0][1])
        return found[0][0], int(payload["step"])

    def now(self) -> datetime:
        now: datetime = self.one("SELECT now()")
        return now

    def timeline(self, incident_id: int, kind: str) -> list[dict[str, Any]]:
        rows = self.rows(
            "SELECT data FROM timeline_events WHERE incident_id = %s AND kind = %s ORDER BY seq",
            incident_id,
            kind,
        )
        return [r[0] if isinstance(r[0], dict) else json.loads(r[0]) for r in rows]

    def close(self) -> None:
        self.conn.close()


async def declare(url: str, policy_file: Path) -> int:
    """Declare a P1 for the portal from this process, as the API would."""
    db = Database(url)
    try:
        async with db.transaction() as session:
            data = schemas.IncidentCreate(
                title="Checkout is failing", severity="P1", services=["portal"], customer_facing=False
            )
            incident = await incidents.declare(
                session, SystemClock(), load_policy(policy_file), "chaos", data
            )
            return incident.id
    finally:
        await db.dispose()


def test_kill_9_workers_mid_escalation_pages_every_step_once(tmp_path: Path, postgres_url: str) -> None:
    receiver = Receiver()
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(policy_text(receiver.url))
    env = {
        **os.environ,
        "TOCSIN_DATABASE_URL": postgres_url,
        "TOCSIN_POLICY": str(policy_file),
        "TOCSIN_WEBHOOK_SECRET": SECRET,
        "COLUMNS": "200",
    }
    workers = Workers(tmp_path, env)
    db = Db(postgres_url)
    log = tmp_path / "worker-1.log"
    try:
        # 1. Two workers, listening for new timers.
        workers.start(1)
        workers.start(2)
        wait_for(lambda: db.listeners() >= 2, 45, "both workers to LISTEN", log)

        killed_at: list[float] = []

        def kill_both_after_step_1(record: dict[str, Any]) -> None:
            if record["step"] == STEPS[0] and not killed_at:
                workers.kill(1)
                workers.kill(2)
                killed_at.append(time.time())

        receiver.after_delivery = kill_both_after_step_1
        incident = asyncio.run(declare(postgres_url, policy_file))
        wait_for(lambda: receiver.got("pat", ASSEMBLY), 20, "the assembly page", log)
        wait_for(lambda: killed_at, 20, "step 1 paged (2 s unacknowledged), then both workers killed", log)
        receiver.after_delivery = None
        wait_for(lambda: not workers.alive(1) and not workers.alive(2), 10, "both workers to die")

        # The page of step 1 may have been caught between its 200 and the recording of it.
        step_1 = db.page_message("sam", STEPS[0])
        assert step_1 is not None
        in_flight = step_1[2] == "pending"
        print(f"step 1's page was {'in flight' if in_flight else 'recorded as sent'} at the kill")

        # 2. Step 2 comes due while no worker runs; the outage is made to last 90 s longer.
        due_2 = wait_for(db.pending_step, 10, "the step 2 timer")
        assert due_2[1] == 1, due_2
        wait_for(lambda: db.now() > due_2[0], 2 * STEP_DELAY, "step 2 to come due with no worker")
        assert not receiver.got("max", STEPS[1]), "step 2 paged while every worker was dead"
        db.rows(
            "UPDATE timers SET due_at = due_at - %s WHERE kind = 'escalation.step' AND fired_at IS NULL",
            STRETCH,
        )
        if in_flight:  # its lease (2 minutes) runs out now
            db.rows("UPDATE outbox SET next_attempt_at = now() WHERE id = %s", step_1[0])
        workers.start(1)
        workers.start(2)
        wait_for(lambda: receiver.got("max", STEPS[1]), 45, "step 2 paged after the restart", log)

        # 3. Between steps 2 and 3 (step 2 delivered and recorded), one worker is killed.
        wait_for(
            lambda: (m := db.page_message("max", STEPS[1])) is not None and m[2] == "sent",
            10,
            "step 2's page recorded as sent",
            log,
        )
        due_3 = wait_for(db.pending_step, 10, "the step 3 timer", log)
        assert due_3[1] == 2 and db.now() < due_3[0], "not between steps 2 and 3"
        workers.kill(1)
        wait_for(lambda: db.now() > due_3[0], 2 * STEP_DELAY, "step 3 to come due")
        workers.start(1)  # after step 3 was due: the other worker has it, or it takes it now
        wait_for(lambda: receiver.got("dee", STEPS[2]), 20, "step 3 paged", log)
        if in_flight:
            wait_for(
                lambda: len([r for r in receiver.deliveries() if r["key"] == step_1[1]]) >= 2,
                20,
                "the interrupted step 1 page to be sent again",
                log,
            )
        wait_for(
            lambda: db.one("SELECT count(*) FROM outbox WHERE kind = 'page' AND status <> 'sent'") == 0,
            20,
            "every page recorded as sent",
            log,
        )
        wait_for(
            lambda: any("exhausted" in e for e in db.timeline(incident, "escalation")),
            10,
            "the chain to run out",
            log,
        )

        # Exactly once: one Idempotency-Key per (person, step), each seen once; the only repeat allowed
        # is the page the kill caught in flight, sent again with its own key.
        delivered = receiver.deliveries()
        assert receiver.bad_signatures == 0
        by_key: dict[str, list[dict[str, Any]]] = {}
        for record in delivered:
            by_key.setdefault(str(record["key"]), []).append(record)
        assert {(r[0]["person"], r[0]["step"]) for r in by_key.values()} == EXPECTED, delivered
        assert len(by_key) == len(EXPECTED), f"a (person, step) came under two keys: {delivered}"
        repeats = {key: len(records) for key, records in by_key.items() if len(records) > 1}
        assert repeats == ({step_1[1]: 2} if in_flight else {}), (repeats, in_flight, delivered)
        assert all(r["path"] == f"/hook/{r['person']}" for r in delivered)
        pages = set(db.rows("SELECT person, step FROM pages WHERE incident_id = %s", incident))
        assert pages == EXPECTED

        # At the right step: step 2 only after the restart, step 3 not before it was due.
        step_2 = db.page_message("max", STEPS[1])
        assert step_2 is not None and min(r["at"] for r in by_key[step_2[1]]) > killed_at[0]
        paged_3 = db.one(
            "SELECT created_at FROM pages WHERE incident_id = %s AND step = %s", incident, STEPS[2]
        )
        assert paged_3 >= due_3[0]
        steps = [e for e in db.timeline(incident, "escalation") if "people" in e]
        assert [(e["step"], e["people"]) for e in steps] == [(1, ["sam"]), (2, ["max"]), (3, ["dee"])]

        # The late step says so, and by how much; the on-time one does not.
        late = [e for e in db.timeline(incident, "escalation") if "late_by" in e]
        assert len(late) == 1 and late[0]["chain"] == "chaos", late
        assert late[0]["late_by"].startswith("1m"), late  # 90 s stretched + the restart, under 2 min
        assert workers.starts == 5
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{workers.logs()}") from None
    finally:
        receiver.after_delivery = None
        workers.close()
        receiver.close()
        db.close()
