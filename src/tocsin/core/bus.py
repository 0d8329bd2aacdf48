"""An in-process wake-up bus: pages waiting for news (server-sent events) sleep here."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict


class Bus:
    """Topics are strings such as `incident:42`; publishing wakes every waiter of the topic."""

    def __init__(self) -> None:
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)

    def publish(self, *topics: str) -> None:
        for topic in topics:
            for waiter in self._waiters.get(topic, ()):
                waiter.set()

    async def wait(self, topic: str, timeout: float) -> bool:  # noqa: ASYNC109 - a wake-up, not a deadline
        """Sleep until the topic is published or `timeout` seconds pass; True when woken."""
        event = asyncio.Event()
        self._waiters[topic].add(event)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
            return event.is_set()
        finally:
            self._waiters[topic].discard(event)
            if not self._waiters[topic]:
                del self._waiters[topic]
