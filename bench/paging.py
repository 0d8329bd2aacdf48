"""Paging benchmark: from an alert's receipt to the first page at a webhook, next to Alertmanager; engine throughput.

    python -m bench.paging [--incidents 1000] [--background-rate 2000] [--timers 10000]
                           [--targets alertmanager,tocsin-sqlite,tocsin-postgres] [--skip-latency] [--skip-throughput]

Latency. Each target gets `--incidents` alerts one at a time, each of a group never seen before (its own
`bench_group` label), so each opens its own incident (Tocsin) or aggregation group (Alertmanager). The
clock starts before the POST of the Alertmanager API v2 alert and stops when the first webhook call naming
that alert reaches the receiver in this process (the same receiver code for both): for Tocsin that is the
page to the on-call person (`after: 0m` webhook rule), i.e. later than "handed to a channel"; for
Alertmanager (`group_wait: 0s`) its webhook notification. Once idle, once while a separate process
re-sends a pool of 5,000 known alerts (what Prometheus does for firing alerts) at `--background-rate`
alerts/s in batches of 100; those alerts open no incident (Tocsin) and route to a receiver with no
integrations (Alertmanager). For Tocsin the outbox rows' created_at/sent_at are reported too.

Throughput. `--timers` timers of a kind whose handler does nothing, all due, fired by the engine's
`Worker` (the code `tocsin worker` runs) in one process on SQLite and on PostgreSQL, and in two processes
on PostgreSQL. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.ingest import PG_ADMIN_URL, _tocsin_cli, machine, pool_alert, running_alertmanager
from bench.procs import cpu_seconds, free_port, running, wait_ready

TARGETS = ("alertmanager", "tocsin-sqlite", "tocsin-postgres")
BATCH = 100  # alerts per background request
POOL = 5000
NOOP = "bench.noop"
_ID = re.compile(rb"pgb-(\w+?)-(\d+)\b")


# -- the webhook receiver --------------------------------------------------------------------------


class Receiver:
    """Answers 200 to every POST; notes when the first call naming each benchmark alert arrived."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.arrived: dict[str, float] = {}
        self.waiting: dict[str, threading.Event] = {}
        self.calls = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                at = time.perf_counter()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if self.headers.get("X-Tocsin-Kind", "page") != "page":
                    return
                with receiver.lock:
                    receiver.calls += 1
                    for match in _ID.finditer(body):
                        name = match.group(0).decode()
                        if name not in receiver.arrived:
                            receiver.arrived[name] = at
                            event = receiver.waiting.pop(name, None)
                            if event is not None:
                                event.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def expect(self, name: str) -> threading.Event:
        event = threading.Event()
        with self.lock:
            if name in self.arrived:
                event.set()
            else:
                self.waiting[name] = event
        return event

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- targets ---------------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    url: str  # /api/v2/alerts
    key: str
    pid: int
    database_url: str | None  # Tocsin's, to read the outbox afterwards


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@contextmanager
def alertmanager(home: Path, receiver: str) -> Iterator[Target]:
    config = {
        "route": {
            "receiver": "null",
            "group_by": ["bench_group"],
            "group_wait": "0s",
            "group_interval": "1m",
            "repeat_interval": "4h",
            "routes": [{"receiver": "hook", "matchers": ['bench_group=~".+"']}],
        },
        "receivers": [
            {"name": "null"},
            {"name": "hook", "webhook_configs": [{"url": receiver, "send_resolved": False}]},
        ],
    }
    with running_alertmanager(home, yaml.safe_dump(config, sort_keys=False)) as (url, pid, _):
        yield Target("alertmanager", f"{url}/api/v2/alerts", "", pid, None)


def paging_policy(home: Path, receiver: str) -> Path:
    """The built-in policy, plus one on-call person paged by webhook at once; alerts grouped by bench_group.

    The per-integration rate limit and the per-contact throttle are lifted: 1,000 pages to one person is
    the point here, not a storm to damp.
    """
    text = resources.files("tocsin.policy").joinpath("default.yaml").read_text(encoding="utf-8")
    policy = yaml.safe_load(text)
    policy["alerting"]["rate_limit_per_minute"] = 1_000_000_000
    policy["alerting"]["group_by"] = ["bench_group"]
    policy["paging"]["throttle"] = {"messages": 1_000_000, "per": "1m"}
    policy["people"] = [
        {"name": "oncall", "webhook": receiver, "notify": [{"via": "webhook", "after": "0m"}]}
    ]
    policy["teams"] = [
        {
            "name": "bench",
            "rotations": [
                {
                    "name": "bench-primary",
                    "layer": "primary",
                    "members": ["oncall"],
                    "handoff": "weekly",
                    "start": "2026-01-05 09:00",
                }
            ],
        }
    ]
    path = home / "paging-policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


@contextmanager
def tocsin(home: Path, name: str, database_url: str, receiver: str) -> Iterator[Target]:
    port = free_port()
    env = {
        **os.environ,
        "TOCSIN_DATABASE_URL": database_url,
        "TOCSIN_POLICY": str(paging_policy(home, receiver)),
        "TOCSIN_HOST": "127.0.0.1",
        "TOCSIN_PORT": str(port),
        "TOCSIN_WEBHOOK_SECRET": "bench-webhook-secret",
        "COLUMNS": "200",
    }
    _tocsin_cli(env, home, "db", "upgrade")
    token = _tocsin_cli(env, home, "token", "create", "--user", "bench", "--role", "admin").split()[-1]
    log = home / f"{name}.log"
    with running([sys.executable, "-m", "tocsin", "serve"], log, home, env) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_ready(proc, lambda: httpx.get(f"{url}/api/health", timeout=2).is_success, name, log)
        r = httpx.post(
            f"{url}/api/v1/integrations",
            json={"name": "bench-prometheus", "kind": "prometheus"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        r.raise_for_status()
        yield Target(name, f"{url}/api/v2/alerts", r.json()["key"], proc.pid, database_url)


@contextmanager
def start(name: str, home: Path, receiver: str) -> Iterator[Target]:
    if name == "alertmanager":
        with alertmanager(home, receiver) as target:
            yield target
    elif name == "tocsin-sqlite":
        with tocsin(home, name, f"sqlite+aiosqlite:///{home / 'tocsin.db'}", receiver) as target:
            yield target
    elif name == "tocsin-postgres":
        from tocsin.testing import postgres_database

        with postgres_database(PG_ADMIN_URL) as url, tocsin(home, name, url, receiver) as target:
            yield target
    else:
        raise ValueError(f"unknown target {name!r}; one of {', '.join(TARGETS)}")


# -- latency ---------------------------------------------------------------------------------------


@dataclass
class Latency:
    target: str
    case: str  # idle | ingesting
    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    post_p50_ms: float  # the POST's own answer (Tocsin: committed)
    missing: int  # alerts whose page never came (within 10 s)
    background_alerts_per_s: float = 0.0
    server_cpu: float = 0.0
    outbox: dict[str, float] = field(default_factory=dict)  # Tocsin: from its outbox rows


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def alert(run: str, i: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    name = f"pgb-{run}-{i}"
    return [
        {
            "labels": {"alertname": "BenchPage", "bench_group": name, "severity": "warning", "job": "bench"},
            "annotations": {"summary": f"{name} is down"},
            "startsAt": rfc3339(now),
            "endsAt": rfc3339(now + timedelta(hours=1)),
        }
    ]


def measure_latency(
    target: Target, receiver: Receiver, run: str, count: int, gap: float = 0.0
) -> tuple[list[float], list[float], int]:
    """(latencies to the webhook in ms, POST latencies in ms, how many never arrived)."""
    headers = {"Authorization": f"Bearer {target.key}"} if target.key else {}
    latencies: list[float] = []
    posts: list[float] = []
    missing = 0
    with httpx.Client(timeout=30, headers=headers) as client:
        for i in range(count):
            time.sleep(gap)  # the previous incident's follow-up work (announcement, records) settles
            body = alert(run, i)
            name = f"pgb-{run}-{i}"
            arrived = receiver.expect(name)
            t0 = time.perf_counter()
            r = client.post(target.url, json=body)
            posted = time.perf_counter()
            r.raise_for_status()
            posts.append((posted - t0) * 1000)
            if not arrived.wait(10):
                missing += 1
                continue
            latencies.append((receiver.arrived[name] - t0) * 1000)
    return latencies, posts, missing


async def _background(url: str, key: str, rate: float, run: str, stop: asyncio.Event) -> dict[str, float]:
    """Re-send the pool at `rate` alerts/s (batches of 100) until `stop`; the rate achieved."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    now = time.time()
    starts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600))
    bodies = [
        json.dumps([pool_alert(run, i, starts, ends) for i in range(first, first + BATCH)]).encode()
        for first in range(0, POOL, BATCH)
    ]
    interval = BATCH / rate
    sent = errors = 0
    slots = asyncio.Semaphore(32)
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    headers["Content-Type"] = "application/json"
    async with httpx.AsyncClient(timeout=30, headers=headers, limits=limits) as client:

        async def one(body: bytes) -> None:
            nonlocal sent, errors
            async with slots:
                try:
                    r = await client.post(url, content=body)
                    if r.is_success:
                        sent += BATCH
                    else:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1

        tasks: set[asyncio.Task[None]] = set()
        t0 = time.monotonic()
        n = 0
        while not stop.is_set():
            task = asyncio.create_task(one(bodies[n % len(bodies)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
            delay = max(0.0, t0 + n * interval - time.monotonic())
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        elapsed = time.monotonic() - t0
        await asyncio.gather(*tasks)
    return {"alerts_per_s": sent / elapsed, "errors": errors}


def background_sender(url: str, key: str, rate: float, run: str, out: Path) -> None:
    """`--background-sender`: re-send until SIGTERM, then write what was achieved to `out`."""
    import signal

    async def main() -> dict[str, float]:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        return await _background(url, "" if key == "-" else key, rate, run, stop)

    out.write_text(json.dumps(asyncio.run(main())))


@contextmanager
def background(target: Target, rate: float, run: str, home: Path) -> Iterator[Path | None]:
    """The background re-sender in its own process (so it shares no GIL with the receiver here)."""
    out = home / f"background-{run}.json"
    args = [
        sys.executable, "-m", "bench.paging", "--background-sender",
        target.url, target.key or "-", str(rate), run, str(out),
    ]  # fmt: skip
    with running(args, home / "background.log", Path.cwd()) as proc:
        yield out
        proc.terminate()
        proc.wait(timeout=60)


def prefill(target: Target, run: str) -> None:
    """Send the pool once, so the background only re-sends alerts the target already holds."""
    headers = {"Authorization": f"Bearer {target.key}"} if target.key else {}
    now = time.time()
    starts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600))
    with httpx.Client(timeout=60, headers=headers) as client:
        for first in range(0, POOL, BATCH):
            body = [pool_alert(run, i, starts, ends) for i in range(first, first + BATCH)]
            client.post(target.url, json=body).raise_for_status()


async def _outbox(database_url: str, prefix: str) -> dict[str, float]:
    """From Tocsin's rows: incident created -> page queued, and queued -> sent (recorded after the 200)."""
    from sqlalchemy import select

    from tocsin.db.engine import Database
    from tocsin.incidents.models import Incident
    from tocsin.notify.models import OutboxMessage

    db = Database(database_url)
    try:
        async with db.session() as session:
            rows = (
                await session.execute(
                    select(Incident.created_at, OutboxMessage.created_at, OutboxMessage.sent_at)
                    .join(Incident, Incident.id == OutboxMessage.incident_id)
                    .where(
                        OutboxMessage.kind == "page",
                        OutboxMessage.sent_at.is_not(None),
                        Incident.title.startswith(prefix),
                    )
                )
            ).all()
    finally:
        await db.dispose()
    queued = [(q - i).total_seconds() * 1000 for i, q, _ in rows]
    sent = [(s - q).total_seconds() * 1000 for _, q, s in rows if s is not None]
    return {
        "pages": len(rows),
        "queued_p50_ms": percentile(queued, 50),
        "queued_p99_ms": percentile(queued, 99),
        "sent_p50_ms": percentile(sent, 50),
        "sent_p99_ms": percentile(sent, 99),
    }


def latency_target(name: str, home: Path, opts: argparse.Namespace) -> list[Latency]:
    receiver = Receiver()
    results: list[Latency] = []
    try:
        with start(name, home, receiver.url) as target:
            run = f"r{int(time.time())}"
            measure_latency(target, receiver, f"{run}w", 20)  # warm-up
            for case in ("idle", "ingesting"):
                ctx: AbstractContextManager[Path | None] = _nothing()
                if case == "ingesting":
                    prefill(target, run)
                    ctx = background(target, opts.background_rate, run, home)
                with ctx as report:
                    if report is not None:
                        time.sleep(2)  # the background reaches its rate
                    cpu0, t0 = cpu_seconds(target.pid), time.monotonic()
                    lat, posts, missing = measure_latency(
                        target, receiver, f"{run}{case}", opts.incidents, opts.gap
                    )
                    cpu = (cpu_seconds(target.pid) - cpu0) / (time.monotonic() - t0)
                rate = 0.0
                if report is not None:
                    rate = json.loads(report.read_text())["alerts_per_s"] if report.exists() else float("nan")
                result = Latency(
                    target=name,
                    case=case,
                    count=len(lat),
                    p50_ms=percentile(lat, 50),
                    p99_ms=percentile(lat, 99),
                    max_ms=max(lat, default=float("nan")),
                    post_p50_ms=percentile(posts, 50),
                    missing=missing,
                    background_alerts_per_s=rate,
                    server_cpu=cpu,
                )
                results.append(result)
                print(
                    f"{name:16} {case:10} p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  "
                    f"max {result.max_ms:7.1f} ms  POST p50 {result.post_p50_ms:6.2f} ms  missing {missing}  "
                    f"background {rate:,.0f} alerts/s  cpu {cpu:.2f}",
                    flush=True,
                )
            for r in results if target.database_url is not None else []:
                assert target.database_url is not None
                r.outbox = asyncio.run(_outbox(target.database_url, f"pgb-{run}{r.case}-"))
                print(f"{name:16} {r.case:10} outbox: {r.outbox}", flush=True)
    finally:
        receiver.close()
    return results


@contextmanager
def _nothing() -> Iterator[Path | None]:
    yield None


# -- engine throughput -----------------------------------------------------------------------------


@dataclass
class Throughput:
    database: str
    workers: int
    timers: int
    seconds: float
    per_s: float


async def _noop(session: Any, timer: Any, firing: Any) -> None:
    """The trivial handler: what is measured is claiming, marking fired and committing."""


async def _fill(database_url: str, count: int) -> None:
    """`count` timers of the no-op kind, all due a second ago."""
    from sqlalchemy import insert

    from tocsin.db.engine import Database
    from tocsin.engine.models import Timer

    db = Database(database_url)
    now = datetime.now(UTC)
    try:
        async with db.transaction() as session:
            for first in range(0, count, 1000):
                rows = [
                    {
                        "kind": NOOP,
                        "key": str(i),
                        "due_at": now - timedelta(seconds=1),
                        "payload": {},
                        "created_at": now,
                        "attempts": 0,
                    }
                    for i in range(first, min(first + 1000, count))
                ]
                await session.execute(insert(Timer), rows)
    finally:
        await db.dispose()


async def _drain(database_url: str, start_at: float) -> dict[str, float]:
    """`--drain`: from `start_at` (unix time), fire due timers until none is left."""
    from sqlalchemy import text

    import tocsin.db.models  # noqa: F401  (every table, so the ORM can resolve foreign keys)
    from tocsin.core.clock import SystemClock
    from tocsin.db.engine import Database
    from tocsin.engine.worker import Worker

    db = Database(database_url)
    worker = Worker(db, SystemClock(), {NOOP: _noop})
    try:
        async with db.session() as session:  # connect before the start, as a running worker is
            await session.execute(text("SELECT 1"))
        await asyncio.sleep(max(0.0, start_at - time.time()))
        began = time.time()
        while await worker.tick():
            pass
        ended = time.time()
    finally:
        await db.dispose()
    return {"fired": worker.fired, "failed": worker.failed, "began": began, "ended": ended}


def throughput(database: str, database_url: str, workers: int, count: int, home: Path) -> Throughput:
    asyncio.run(_fill(database_url, count))
    start_at = time.time() + 3.0  # after every worker process has imported and connected
    procs = []
    outs = []
    for n in range(workers):
        out = home / f"drain-{database}-{workers}-{n}.json"
        outs.append(out)
        args = [sys.executable, "-m", "bench.paging", "--drain", database_url, str(start_at), str(out)]
        procs.append(subprocess.Popen(args, cwd=Path.cwd()))
    for proc in procs:
        if proc.wait(timeout=600) != 0:
            raise RuntimeError(f"a drain worker exited with {proc.returncode}")
    reports = [json.loads(out.read_text()) for out in outs]
    fired = int(sum(r["fired"] for r in reports))
    if fired != count or any(r["failed"] for r in reports):
        raise RuntimeError(f"fired {fired} of {count} timers: {reports}")
    seconds = max(r["ended"] for r in reports) - min(r["began"] for r in reports)
    result = Throughput(database, workers, count, seconds, count / seconds)
    print(
        f"engine {database:10} {workers} worker(s): {count:,} timers in {seconds:.2f} s = {result.per_s:,.0f}/s"
        f" (per worker: {', '.join(str(int(r['fired'])) for r in reports)})",
        flush=True,
    )
    return result


def run_throughput(count: int, home: Path) -> list[Throughput]:
    from tocsin.db import migrate
    from tocsin.testing import postgres_database

    results = []
    path = home / "throughput.db"
    migrate.upgrade(f"sqlite:///{path}")
    results.append(throughput("sqlite", f"sqlite+aiosqlite:///{path}", 1, count, home))
    for workers in (1, 2):
        with postgres_database(PG_ADMIN_URL) as url:
            results.append(throughput("postgresql", url, workers, count, home))
    return results


# -- report ----------------------------------------------------------------------------------------


def report(latencies: list[Latency], rates: list[Throughput]) -> str:
    lines = []
    if latencies:
        base = {r.case: r for r in latencies if r.target == "alertmanager"}
        lines += [
            "| target | case | background alerts/s | p50 ms | p99 ms | max ms | p50 vs AM | p99 vs AM | target p99 |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in latencies:
            am = base.get(r.case)
            goal = 50.0 if r.case == "idle" else 250.0
            met = (
                "-"
                if r.target == "alertmanager"
                else ("met" if r.p99_ms < goal else "MISSED") + f" (< {goal:.0f})"
            )
            lines.append(
                f"| {r.target} | {r.case} | {r.background_alerts_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
                f"{r.max_ms:.1f} | {r.p50_ms / am.p50_ms if am else float('nan'):.1f}x | "
                f"{r.p99_ms / am.p99_ms if am else float('nan'):.1f}x | {met} |"
            )
    if rates:
        lines += ["", "| engine | workers | timers | seconds | timers/s |", "|---|---:|---:|---:|---:|"]
        lines += [
            f"| {r.database} | {r.workers} | {r.timers:,} | {r.seconds:.2f} | {r.per_s:,.0f} |" for r in rates
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--background-sender"]:
        url, key, rate, run, out = argv[1:6]
        background_sender(url, key, float(rate), run, Path(out))
        return 0
    if argv[:1] == ["--drain"]:
        url, start_at, out = argv[1:4]
        Path(out).write_text(json.dumps(asyncio.run(_drain(url, float(start_at)))))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.paging", description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=1000, help="alerts (each a new incident) per case")
    parser.add_argument(
        "--background-rate", type=float, default=2000, help="alerts/s re-sent while ingesting"
    )
    parser.add_argument("--timers", type=int, default=10_000)
    parser.add_argument(
        "--gap", type=float, default=0.1, help="seconds between one page's arrival and the next alert"
    )
    parser.add_argument(
        "--targets", default=",".join(TARGETS), help=f"comma-separated, of {', '.join(TARGETS)}"
    )
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    opts = parser.parse_args(argv)
    print(f"# paging benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n{machine()}\n", flush=True)
    home = Path(tempfile.mkdtemp(prefix="tocsin-bench-paging-"))
    latencies: list[Latency] = []
    rates: list[Throughput] = []
    try:
        if not opts.skip_latency:
            for name in opts.targets.split(","):
                (home / name).mkdir()
                latencies += latency_target(name, home / name, opts)
        if not opts.skip_throughput:
            rates = run_throughput(opts.timers, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print()
    print(report(latencies, rates))
    if opts.json:
        opts.json.write_text(
            json.dumps(
                {"latency": [asdict(r) for r in latencies], "throughput": [asdict(r) for r in rates]},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
