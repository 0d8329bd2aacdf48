"""Status page benchmark: Tocsin's live /status and summary.json next to nginx serving the static export.

    python -m bench.status [--duration 10] [--warmup 3] [--connections 50,200] [--workers 1]

Tocsin (SQLite, `tocsin serve`) gets an active P0 on two components with a status update; `tocsin status
export` writes the page to a directory that Debian's nginx serves. wrk (Debian) then loads the same two
resources from both, at each connection count, and once more while a second wrk posts alerts to Tocsin's
ingest endpoint (an alert storm during the outage the page reports). Printed: req/s, p50 and p99 latency,
non-2xx answers, and Tocsin's req/s as a share of nginx's. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.ingest import LUA, WRK, _tocsin_cli, bench_policy, machine, parse_wrk
from bench.procs import free_port, running, wait_ready

NGINX = "/usr/sbin/nginx"
RESOURCES = {
    "page": ("/status", "/"),
    "summary.json": ("/status/api/v2/summary.json", "/api/v2/summary.json"),
}
_PERCENTILE = re.compile(r"^\s*(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass
class Result:
    target: str
    resource: str
    connections: int
    storm: bool
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    alerts_per_s: float = 0.0  # ingested by Tocsin during the run (storm runs only)


def parse(text: str) -> tuple[float, float, float, int]:
    """(req/s, p50 ms, p99 ms, non-2xx and socket errors) from `wrk --latency` output."""
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.MULTILINE)
    percentiles = {p: float(v) * _UNIT_MS[u] for p, v, u in _PERCENTILE.findall(text)}
    if rate is None or "50" not in percentiles or "99" not in percentiles:
        raise RuntimeError(f"cannot read wrk's output:\n{text}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    failures = int(bad.group(1)) if bad else 0
    failures += sum(int(g) for g in errors.groups()) if errors else 0
    return float(rate.group(1)), percentiles["50"], percentiles["99"], failures


def wrk(url: str, seconds: int, connections: int, threads: int = 1) -> str:
    args = [WRK, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s", url]
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


@contextmanager
def tocsin(home: Path, workers: int) -> Iterator[tuple[str, str, dict[str, str]]]:
    """A Tocsin on SQLite with an active P0 on two components; (base URL, API token, its environment)."""
    port = free_port()
    env = {
        **os.environ,
        "TOCSIN_DATABASE_URL": f"sqlite+aiosqlite:///{home / 'tocsin.db'}",
        "TOCSIN_POLICY": str(bench_policy(home)),
        "TOCSIN_HOST": "127.0.0.1",
        "TOCSIN_PORT": str(port),
        "TOCSIN_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "COLUMNS": "200",
    }
    _tocsin_cli(env, home, "db", "upgrade")
    token = _tocsin_cli(env, home, "token", "create", "--user", "bench", "--role", "admin").split()[-1]
    if workers == 1:
        args = [sys.executable, "-m", "tocsin", "serve"]
    else:
        args = [
            sys.executable, "-m", "uvicorn", "tocsin.app:create_app", "--factory", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers), "--loop", "asyncio", "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    log = home / "tocsin.log"
    with running(args, log, home, env) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_ready(proc, lambda: httpx.get(f"{url}/api/health", timeout=2).is_success, "tocsin", log)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            ref = client.post(
                "/api/v1/incidents",
                json={"title": "Portal returns 503", "severity": "P0", "components": ["application", "api"]},
            ).json()["id"]
            client.post(f"/api/v1/incidents/{ref}/status-updates", json={}).raise_for_status()
        time.sleep(1.5)  # past the render cache's one-second poll: every process shows the update
        yield url, token, env


@contextmanager
def nginx(home: Path, root: Path) -> Iterator[str]:
    """Debian's nginx serving the exported directory, as one would in production (sendfile, 2 workers)."""
    port = free_port()
    conf = home / "nginx.conf"
    conf.write_text(
        f"""worker_processes 2;
pid {home}/nginx.pid;
error_log {home}/nginx-error.log warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
  include /etc/nginx/mime.types;
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path {home}/tmp; proxy_temp_path {home}/tmp; fastcgi_temp_path {home}/tmp;
  uwsgi_temp_path {home}/tmp; scgi_temp_path {home}/tmp;
  server {{
    listen 127.0.0.1:{port};
    root {root};
    index index.html;
  }}
}}
"""
    )
    (home / "tmp").mkdir(exist_ok=True)
    for path in (home, *root.rglob("*"), root):  # nginx's workers run as an unprivileged user
        path.chmod(0o755 if path.is_dir() else 0o644)
    with running([NGINX, "-c", str(conf), "-p", str(home)], home / "nginx.log", home) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_ready(proc, lambda: httpx.get(f"{url}/", timeout=2).is_success, "nginx", home / "nginx.log")
        yield url


@contextmanager
def storm(url: str, env: dict[str, str], home: Path, token: str, seconds: int) -> Iterator[list[float]]:
    """Alerts posted to Tocsin (wrk, 8 connections, 1 new alert per request) for the length of a run."""
    r = httpx.post(
        f"{url}/api/v1/integrations",
        json={"name": f"bench-storm-{time.time_ns()}", "kind": "prometheus"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    r.raise_for_status()
    key = r.json()["key"]
    args = [WRK, "-t1", "-c8", f"-d{seconds + 4}s", "--latency", "-s", str(LUA), f"{url}/api/v2/alerts", "--", "1", "new",
            f"storm{time.time_ns()}", key]  # fmt: skip
    log = home / f"storm-{time.time_ns()}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    rate: list[float] = []
    try:
        time.sleep(2)  # the storm is on before the measured run starts
        yield rate
    finally:
        proc.wait(timeout=seconds + 60)
    _, counts = parse_wrk(log.read_text())
    rate.append((counts["requests"] - counts["status_errors"]) / (counts["duration_us"] / 1e6))


def measure(
    target: str,
    target_url: str,
    resource: str,
    connections: int,
    storming: bool,
    opts: argparse.Namespace,
    url: str,
    env: dict[str, str],
    home: Path,
    token: str,
) -> Result:
    """A warm-up, then one measured wrk run (during an alert storm when `storming`); printed as it ends."""
    wrk(target_url, opts.warmup, connections, opts.wrk_threads)
    alerts: list[float] = []
    if storming:
        with storm(url, env, home, token, opts.duration) as alerts:
            text = wrk(target_url, opts.duration, connections, opts.wrk_threads)
    else:
        text = wrk(target_url, opts.duration, connections, opts.wrk_threads)
    rate, p50, p99, bad = parse(text)
    result = Result(
        target, resource, connections, storming, rate, p50, p99, bad, alerts[0] if alerts else 0.0
    )
    storm_note = f"  alerts ingested {result.alerts_per_s:,.0f}/s" if storming else ""
    print(
        f"{target:7} {resource:13} c={connections:<4} storm={'yes' if storming else 'no ':3}"
        f" {rate:10,.0f} req/s  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  non-2xx {bad}{storm_note}",
        flush=True,
    )
    return result


def table(results: list[Result]) -> str:
    lines = [
        "| resource | clients | alerts ingested meanwhile | nginx req/s | nginx p99 ms | Tocsin req/s | Tocsin p50 ms "
        "| Tocsin p99 ms | Tocsin / nginx | non-2xx |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = {(r.resource, r.connections): r for r in results if r.target == "nginx"}
    for r in (r for r in results if r.target == "tocsin"):
        n = base.get((r.resource, r.connections))
        ratio = f"{r.requests_per_s / n.requests_per_s:.0%}" if n and n.requests_per_s else "-"
        lines.append(
            f"| {r.resource} | {r.connections} | {f'{r.alerts_per_s:,.0f}/s' if r.storm else 'no'} | "
            f"{n.requests_per_s if n else 0:,.0f} | {n.p99_ms if n else 0:.2f} | {r.requests_per_s:,.0f} | "
            f"{r.p50_ms:.2f} | {r.p99_ms:.2f} | {ratio} | {r.non_2xx} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.status", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds measured per run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up before each run")
    parser.add_argument("--connections", default="50,200", help="comma-separated wrk connection counts")
    parser.add_argument("--workers", type=int, default=1, help="Tocsin processes (1: tocsin serve)")
    parser.add_argument("--no-storm", action="store_true", help="skip the runs during an alert storm")
    parser.add_argument(
        "--wrk-threads",
        type=int,
        default=1,
        help="wrk threads (default 1: on two cores a second busy wrk thread takes the core one server "
        "process needs, and the connections it starves show up as a 0.5-2 s tail that is the load "
        "generator's, not the server's)",
    )
    opts = parser.parse_args(argv)
    for tool in (WRK, NGINX):
        if not os.access(tool, os.X_OK):
            print(f"missing {tool}: run scripts/system-deps.sh", file=sys.stderr)
            return 2
    print(f"# status page benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n{machine()}\n", flush=True)
    home = Path(tempfile.mkdtemp(prefix="tocsin-bench-status-"))
    results: list[Result] = []
    try:
        with tocsin(home, opts.workers) as (url, token, env):
            site = home / "site"
            _tocsin_cli(env, home, "status", "export", str(site))
            with nginx(home, site) as static:
                for connections in [int(c) for c in opts.connections.split(",")]:
                    for storming in (False, True) if not opts.no_storm else (False,):
                        for resource, (live_path, static_path) in RESOURCES.items():
                            runs = [("tocsin", f"{url}{live_path}")]
                            if not storming:
                                runs.insert(0, ("nginx", f"{static}{static_path}"))
                            for target, target_url in runs:
                                results.append(
                                    measure(
                                        target,
                                        target_url,
                                        resource,
                                        connections,
                                        storming,
                                        opts,
                                        url,
                                        env,
                                        home,
                                        token,
                                    )
                                )
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print()
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
