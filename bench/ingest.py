"""Ingest benchmark: Tocsin (SQLite, PostgreSQL) next to Debian's Alertmanager, fed by the same wrk load.

Every target gets the same four cases, each a warm-up then a measured wrk run at 32 connections posting
Alertmanager API v2 alerts (what Prometheus sends) to `/api/v2/alerts`: 1 and 100 alerts per request, with
label sets never seen before ("new") and with a fixed pool of alerts sent again ("resend", which Prometheus
does for every firing alert every minute). Alertmanager keeps alerts in memory; Tocsin answers 200 only
after the alerts are committed to its database.

    python -m bench [--duration 10] [--warmup 3] [--repeat 1] [--targets alertmanager,tocsin-sqlite,...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import httpx

from bench.procs import cpu_seconds, free_port, running, wait_ready

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
WRK = "/usr/bin/wrk"
LUA = Path(__file__).with_name("alerts.lua")
POOL = 5000  # alerts in the resend pool; the same number as POOL in alerts.lua
_RUNS = itertools.count()
PG_ADMIN_URL = os.environ.get("TOCSIN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True)
class Case:
    name: str
    batch: int
    mode: str  # new | resend


CASES = [
    Case("1/req new", 1, "new"),
    Case("100/req new", 100, "new"),
    Case("1/req resend", 1, "resend"),
    Case("100/req resend", 100, "resend"),
]


@dataclass
class Target:
    name: str
    url: str  # the ingest URL
    key: str  # sent as a bearer token (Alertmanager ignores it)
    pid: int
    command: str
    token: str = ""  # Tocsin: an admin's API token, to read what was sent


@dataclass
class Result:
    target: str
    case: str
    alerts_per_s: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu: float  # cores busy in the server process (and its workers) during the run
    load_before: float
    wrk: str


# -- targets ---------------------------------------------------------------------------------------


@contextmanager
def alertmanager(home: Path) -> Iterator[Target]:
    # Every alert goes to a receiver with no integrations: the cost measured is ingest, not notification.
    with running_alertmanager(home, 'route: {receiver: "null"}\nreceivers: [{name: "null"}]\n') as (
        url,
        pid,
        cmd,
    ):
        yield Target("alertmanager", f"{url}/api/v2/alerts", "", pid, cmd)


@contextmanager
def running_alertmanager(home: Path, config_text: str) -> Iterator[tuple[str, int, str]]:
    """Debian's Alertmanager with this configuration, until the block ends: (base URL, pid, command)."""
    port = free_port()
    config = home / "alertmanager.yml"
    config.write_text(config_text)
    args = [
        ALERTMANAGER,
        f"--config.file={config}",
        f"--storage.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    log = home / "alertmanager.log"
    with running(args, log, home) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_ready(proc, lambda: httpx.get(f"{url}/-/ready", timeout=1).is_success, "Alertmanager", log)
        yield url, proc.pid, " ".join(args)


def bench_policy(home: Path) -> Path:
    """The built-in policy with the per-integration rate limit (60,000 alerts a minute) lifted."""
    text = resources.files("tocsin.policy").joinpath("default.yaml").read_text(encoding="utf-8")
    lifted, n = re.subn(r"rate_limit_per_minute: \d+", "rate_limit_per_minute: 1000000000", text)
    if n != 1:
        raise RuntimeError("cannot find rate_limit_per_minute in the default policy")
    path = home / "bench-policy.yaml"
    path.write_text(lifted)
    return path


def _tocsin_cli(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tocsin", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"tocsin {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


@contextmanager
def tocsin(home: Path, name: str, database_url: str, workers: int) -> Iterator[Target]:
    """`tocsin serve`: one process, or several sharing the port (`--workers`, PostgreSQL only)."""
    port = free_port()
    env = {
        **os.environ,
        "TOCSIN_DATABASE_URL": database_url,
        "TOCSIN_POLICY": str(bench_policy(home)),
        "TOCSIN_HOST": "127.0.0.1",
        "TOCSIN_PORT": str(port),
        "COLUMNS": "200",
    }
    _tocsin_cli(env, home, "db", "upgrade")
    token = _tocsin_cli(env, home, "token", "create", "--user", "bench", "--role", "admin").split()[-1]
    args = [sys.executable, "-m", "tocsin", "serve", "--workers", str(workers)]
    log = home / f"{name}.log"
    with running(args, log, home, env) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_ready(proc, lambda: httpx.get(f"{url}/api/health", timeout=2).is_success, name, log)
        r = httpx.post(
            f"{url}/api/v1/integrations",
            json={"name": "bench-prometheus", "kind": "prometheus"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        r.raise_for_status()
        command = " ".join(a if a != sys.executable else "python" for a in args)
        yield Target(name, f"{url}/api/v2/alerts", r.json()["key"], proc.pid, command, token)


# -- load ------------------------------------------------------------------------------------------


def pool_alert(run: str, i: int, starts: str, ends: str) -> dict[str, object]:
    """Alert i of the resend pool, exactly as alerts.lua builds it."""
    return {
        "labels": {
            "alertname": "BenchInstanceSlow",
            "job": "bench",
            "severity": "warning",
            "run": run,
            "instance": f"pool-{i}",
        },
        "annotations": {"summary": f"instance pool-{i} is slow"},
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": "http://prometheus.bench:9090/graph?g0.expr=up",
    }


def prefill(target: Target, run: str) -> None:
    """Send the resend pool once, so the resend cases repeat alerts the target already holds."""
    now = time.time()
    starts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600))
    headers = {"Authorization": f"Bearer {target.key}"} if target.key else {}
    with httpx.Client(timeout=60) as client:
        for first in range(0, POOL, 100):
            body = [pool_alert(run, i, starts, ends) for i in range(first, first + 100)]
            client.post(target.url, json=body, headers=headers).raise_for_status()


_PERCENTILE = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(text: str) -> tuple[dict[str, float], dict[str, int]]:
    """(latency percentiles in ms from `--latency`, the counts alerts.lua's done() prints)."""
    percentiles = {p: float(v) * _UNIT_MS[unit] for p, v, unit in _PERCENTILE.findall(text)}
    summary = re.search(r"^WRK-SUMMARY (\{.*\})$", text, re.MULTILINE)
    if not summary or "50" not in percentiles or "99" not in percentiles:
        raise RuntimeError(f"cannot read wrk's output:\n{text}")
    counts: dict[str, int] = json.loads(summary.group(1))
    return percentiles, counts


def wrk(
    target: Target, case: Case, run: str, seconds: int, connections: int, threads: int
) -> tuple[str, str]:
    args = [
        WRK, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s",
        "-s", str(LUA), target.url, "--", str(case.batch), case.mode, run, target.key,
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout, " ".join(args[:-1] + (["KEY"] if target.key else []))


def measure(target: Target, case: Case, run: str, opts: argparse.Namespace) -> Result:
    # "new": a fresh word in the labels of every wrk run (warm-up included), so no alert is ever sent twice;
    # "resend": the pool, over and over.
    def labels() -> str:
        return f"{run}-{next(_RUNS)}" if case.mode == "new" else run

    wrk(target, case, labels(), opts.warmup, opts.connections, opts.threads)
    load = os.getloadavg()[0]
    cpu0, t0 = cpu_seconds(target.pid), time.monotonic()
    text, command = wrk(target, case, labels(), opts.duration, opts.connections, opts.threads)
    cpu = (cpu_seconds(target.pid) - cpu0) / (time.monotonic() - t0)
    percentiles, counts = parse_wrk(text)
    seconds = counts["duration_us"] / 1e6
    errors = sum(counts[k] for k in ("status_errors", "connect", "read", "write", "timeout"))
    ok = counts["requests"] - counts["status_errors"]
    return Result(
        target=target.name,
        case=case.name,
        alerts_per_s=ok * case.batch / seconds,
        requests_per_s=counts["requests"] / seconds,
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        errors=errors,
        server_cpu=cpu,
        load_before=load,
        wrk=command,
    )


# -- report ----------------------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    base = {r.case: r for r in results if r.target == "alertmanager"}
    lines = [
        "| case | target | alerts/s | p50 ms | p99 ms | errors | server CPU | alerts/s vs AM | p99 vs AM |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in CASES:
        for r in (r for r in results if r.case == case.name):
            am = base.get(r.case)
            ratio = f"{r.alerts_per_s / am.alerts_per_s:.2f}" if am and am.alerts_per_s else "-"
            p99 = f"{r.p99_ms / am.p99_ms:.2f}" if am and am.p99_ms else "-"
            lines.append(
                f"| {r.case} | {r.target} | {r.alerts_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
                f"{r.errors} | {r.server_cpu:.2f} | {ratio} | {p99} |"
            )
    return "\n".join(lines)


def machine() -> str:
    mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    versions = []
    for cmd in ([ALERTMANAGER, "--version"], [WRK, "-v"]):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        versions.append((out.stdout + out.stderr).splitlines()[0])
    return (
        f"nproc {os.cpu_count()}, {model}, {mem.split(':')[1].strip()} memory; "
        f"load average {os.getloadavg()[0]:.2f} at start; " + "; ".join(versions)
    )


# -- main ------------------------------------------------------------------------------------------

TARGETS = ("alertmanager", "tocsin-sqlite", "tocsin-sqlite-2w", "tocsin-postgres", "tocsin-postgres-2w")


@contextmanager
def start(name: str, home: Path) -> Iterator[Target]:
    if name == "alertmanager":
        with alertmanager(home) as target:
            yield target
        return
    workers = 2 if name.endswith("-2w") else 1  # `tocsin serve --workers 2`: one per core here
    if name.startswith("tocsin-sqlite"):
        with tocsin(home, name, f"sqlite+aiosqlite:///{home / 'tocsin.db'}", workers) as target:
            yield target
        return
    from tocsin.testing import postgres_database  # a fresh database, dropped afterwards

    with postgres_database(PG_ADMIN_URL) as url, tocsin(home, name, url, workers) as target:
        yield target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds measured per case")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up before each case")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--targets", default=",".join(TARGETS), help=f"comma-separated, of {', '.join(TARGETS)}"
    )
    parser.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per case; the median (by alerts/s) is kept"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    opts = parser.parse_args(argv)
    for tool in (ALERTMANAGER, WRK):
        if not os.access(tool, os.X_OK):
            print(f"missing {tool}: run scripts/system-deps.sh (make bench does)", file=sys.stderr)
            return 2
    cases = [c for c in CASES if not opts.cases or c.name in opts.cases.split(",")]
    run = f"r{int(time.time())}"
    started = datetime.now(UTC)
    print(f"# ingest benchmark, {started:%Y-%m-%d %H:%M} UTC\n{machine()}\n", flush=True)
    results: list[Result] = []
    commands: dict[str, str] = {}
    home = Path(tempfile.mkdtemp(prefix="tocsin-bench-"))
    failed: list[str] = []
    try:
        for name in opts.targets.split(","):
            target_home = home / name
            target_home.mkdir()
            try:
                run_target(name, target_home, cases, run, opts, results, commands)
            except (RuntimeError, OSError, subprocess.SubprocessError, httpx.HTTPError) as exc:
                # Report, keep the server's log, and go on with the next target.
                failed.append(name)
                print(f"{name} FAILED: {exc}", flush=True)
                for log in sorted(target_home.glob("*.log")):
                    print(
                        f"--- {log.name} (last lines)\n{log.read_text(errors='replace')[-3000:]}", flush=True
                    )
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print()
    print(table(results))
    print("\nservers:")
    for name, command in commands.items():
        print(f"  {name}: {command}")
    if results:
        print(f"load generator: {results[-1].wrk}")
    if opts.json:
        opts.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def run_target(
    name: str,
    home: Path,
    cases: list[Case],
    run: str,
    opts: argparse.Namespace,
    results: list[Result],
    commands: dict[str, str],
) -> None:
    with start(name, home) as target:
        commands[name] = target.command
        prefill(target, run)
        for case in cases:
            runs = sorted(
                (measure(target, case, run, opts) for _ in range(opts.repeat)), key=lambda r: r.alerts_per_s
            )
            result = runs[len(runs) // 2]
            results.append(result)
            print(
                f"{name:20} {case.name:16} {result.alerts_per_s:10,.0f} alerts/s  p50 {result.p50_ms:8.2f} ms"
                f"  p99 {result.p99_ms:8.2f} ms  errors {result.errors}  cpu {result.server_cpu:.2f}"
                f"  load {result.load_before:.1f}",
                flush=True,
            )
