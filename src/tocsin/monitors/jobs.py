"""Background work of the health-check monitors: the runner and the hourly rollup."""

from __future__ import annotations

from tocsin.monitors.runner import MonitorRunner
from tocsin.runtime import Runtime


def register(rt: Runtime) -> MonitorRunner:
    """Run the policy's monitors inside `tocsin serve`; returns the runner."""
    runner = MonitorRunner(rt)
    # `serve` runs until the loops stop (it sleeps until the next slot, never a whole second); the rollup
    # also resolves the alerts of monitors that left the policy, so it runs even when there are none.
    rt.loops.add("monitors", 1.0, runner.serve)
    rt.loops.add("monitor-rollup", 60.0, runner.rollup)
    return runner
