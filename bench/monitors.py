"""How late 1,000 HTTP monitors at a 30 s interval start, on one event loop (the issue's "on time" target).

    python -m bench.monitors [--monitors 1000] [--seconds 31]

Runs Tocsin's real MonitorRunner on the real clock against a local HTTP server on 127.0.0.1 and
prints the distribution of each run's lag (start minus its scheduled slot) and how many slots were
skipped. A measurement, not a test: the figures go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
from pathlib import Path

from sqlalchemy import func, select

from tocsin.app import build_runtime
from tocsin.config import Settings
from tocsin.core.clock import SystemClock
from tocsin.db import migrate
from tocsin.db.engine import Database
from tocsin.monitors.models import MonitorResult
from tocsin.monitors.runner import MonitorRunner
from tocsin.policy import default_policy
from tocsin.policy.monitors import MonitorSpec

RESPONSE = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"status":"ok"}'


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(RESPONSE)
            await writer.drain()
    writer.close()


async def run(count: int, seconds: float) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await asyncio.to_thread(migrate.upgrade, url)
        db = Database(url)
        server = await asyncio.start_server(_answer, "127.0.0.1", 0, backlog=2048)
        port = server.sockets[0].getsockname()[1]
        specs = [
            MonitorSpec.model_validate(
                {
                    "name": f"m{i:04d}",
                    "component": "api",
                    "url": f"http://127.0.0.1:{port}/health",
                    "interval": "30s",
                }
            )
            for i in range(count)
        ]
        policy = default_policy().model_copy(update={"monitors": specs})
        rt = build_runtime(Settings(database_url=url), clock=SystemClock(), db=db, policy=policy)
        runner = MonitorRunner(rt)
        serving = asyncio.create_task(runner.serve())
        try:
            await asyncio.sleep(seconds)
        finally:
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving
            await rt.ingestor.close()
            server.close()
        async with db.session() as session:
            monitors = await session.scalar(select(func.count(func.distinct(MonitorResult.monitor))))
        await db.dispose()
    lags = sorted(runner.lags) or [0.0]
    p99 = lags[int(len(lags) * 0.99)]
    return (
        f"{count} monitors, {seconds:.0f}s: {len(lags)} runs, {monitors} distinct monitors ran, "
        f"{runner.skipped} slots skipped; lag p50 {statistics.median(lags) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {lags[-1] * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=31.0)
    args = parser.parse_args()
    print(asyncio.run(run(args.monitors, args.seconds)))


if __name__ == "__main__":
    main()
