"""Storm triage: Tocsin's filtered alert list next to Alertmanager's, on the same open alerts.

    python -m bench.triage [--alerts 20000] [--runs 20] [--targets alertmanager,tocsin-sqlite,tocsin-postgres]

Both get the same alerts through their Alertmanager API v2 endpoint (`POST /api/v2/alerts`, 1,000 a
request; Alertmanager keeps them in memory, Tocsin commits them), then answer the same label filters,
one request at a time: Alertmanager's `GET /api/v2/alerts?filter=...` and Tocsin's
`GET /api/v1/alerts?filter=...` (the newest 1,000 at most; every filter here matches fewer). Printed per
filter: the alerts returned and the median and 90th percentile of the request's time, and Tocsin's
median as a multiple of Alertmanager's. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.ingest import ALERTMANAGER, machine, start

# (name, the filter's matchers as both APIs take them, one per `filter` value)
FILTERS = [
    ("exact, two labels (200)", ['alertname="Alert3"', 'shard="13"']),
    ("regex, the newest (10)", ['instance=~"host-{last}[0-9]"']),
    ("regex, the oldest (10)", ['instance=~"host-1[0-9]"']),
    ("negative and regex (1,000)", ['alertname!="Alert3"', 'shard=~"1[0-9]"', 'zone="z0"']),
]


def alert(i: int, ends: str) -> dict[str, object]:
    labels = {
        "alertname": f"Alert{i % 20}",
        "instance": f"host-{i}",
        "shard": str(i % 50),
        "zone": f"z{i % 4}",
        "job": "node",
    }
    return {"labels": labels, "annotations": {"summary": f"host-{i} is down"}, "endsAt": ends}


def load(url: str, headers: dict[str, str], count: int) -> float:
    """Send `count` alerts, 1,000 a request; the seconds it took."""
    ends = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    started = time.perf_counter()
    with httpx.Client(timeout=120) as client:
        for first in range(0, count, 1000):
            body = [alert(i, ends) for i in range(first, min(first + 1000, count))]
            client.post(url, json=body, headers=headers).raise_for_status()
    return time.perf_counter() - started


def timed(
    client: httpx.Client, path: str, params: list[tuple[str, str]], runs: int
) -> tuple[int, list[float]]:
    """The number of alerts answered, and each run's seconds."""
    seconds, found = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        r = client.get(path, params=tuple(params))
        seconds.append(time.perf_counter() - started)
        r.raise_for_status()
        found = len(r.json())
    return found, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.triage", description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--targets", default="alertmanager,tocsin-sqlite,tocsin-postgres")
    opts = parser.parse_args(argv)
    last = str(opts.alerts // 10 - 1)  # host-{last}0 .. host-{last}9: the ten newest
    print(
        f"# triage benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {opts.alerts:,} open alerts\n{machine()}\n"
    )
    rows: dict[str, dict[str, tuple[int, float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="tocsin-triage-") as tmp:
        for name in opts.targets.split(","):
            home = Path(tmp) / name
            home.mkdir()
            with start(name, home) as target:
                base = target.url.removesuffix("/api/v2/alerts")
                sending = {"Authorization": f"Bearer {target.key}"} if target.key else {}
                took = load(target.url, sending, opts.alerts)
                print(f"{name}: {opts.alerts:,} alerts sent in {took:.1f} s", flush=True)
                reading = {"Authorization": f"Bearer {target.token}"} if target.token else {}
                path = "/api/v2/alerts" if name == "alertmanager" else "/api/v1/alerts"
                extra: list[tuple[str, str]] = [] if name == "alertmanager" else [("limit", "1000")]
                rows[name] = {}
                with httpx.Client(base_url=base, headers=reading, timeout=60) as client:
                    for label, matchers in FILTERS:
                        params: list[tuple[str, str]] = [
                            ("filter", m.replace("{last}", last)) for m in matchers
                        ]
                        params += extra
                        found, seconds = timed(client, path, params, opts.runs)
                        median = statistics.median(seconds)
                        p90 = statistics.quantiles(seconds, n=10)[-1]
                        rows[name][label] = (found, median, p90)
                        print(
                            f"  {label:28} {found:5} alerts  median {median * 1000:7.1f} ms  p90 {p90 * 1000:7.1f} ms",
                            flush=True,
                        )
    base_row = rows.get("alertmanager", {})
    print("\n| filter | target | alerts | median ms | p90 ms | median vs AM |\n|---|---|---:|---:|---:|---:|")
    for label, _ in FILTERS:
        for name, results in rows.items():
            found, median, p90 = results[label]
            am = base_row.get(label)
            ratio = f"{median / am[1]:.2f}" if am else "-"
            print(f"| {label} | {name} | {found} | {median * 1000:.1f} | {p90 * 1000:.1f} | {ratio} |")
    return 0


if __name__ == "__main__":
    if not Path(ALERTMANAGER).exists():
        print(f"missing {ALERTMANAGER}: run scripts/system-deps.sh", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(main())
