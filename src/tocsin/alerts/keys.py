"""Integration keys on the ingest path: a short-lived cache and a per-integration rate limit."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from tocsin.alerts import integrations
from tocsin.alerts.integrations import IntegrationInfo
from tocsin.db.engine import Database

CACHE_SECONDS = 10.0


class Unknown:
    """Not in the cache: the database has to be asked."""


UNKNOWN = Unknown()


@dataclass
class _Bucket:
    tokens: float
    updated: float


class KeyRing:
    """Looks integration keys up at most once per CACHE_SECONDS, so a storm costs no key queries."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, tuple[float, IntegrationInfo | None]] = {}
        self._buckets: dict[int, _Bucket] = {}

    def cached(self, key: str) -> IntegrationInfo | Unknown | None:
        """The integration of `key` (None if there is none) without a query, or UNKNOWN: ask `lookup`."""
        if not key or len(key) > 200:
            return None
        hit = self._cache.get(key)  # by the key itself: no hash per request (the database keeps only hashes)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        return UNKNOWN

    async def lookup(self, key: str) -> IntegrationInfo | None:
        found = self.cached(key)
        if not isinstance(found, Unknown):
            return found
        now = time.monotonic()
        async with self.db.session() as session:
            found = await integrations.by_key(session, key)
        if len(self._cache) > 10_000:  # unknown keys must not grow the cache without bound
            self._cache.clear()
        self._cache[key] = (now, found)
        return found

    def forget(self) -> None:
        self._cache.clear()

    def admit(self, integration_id: int, cost: int, per_minute: int) -> float:
        """Take `cost` tokens from the integration's bucket; 0 if admitted, else seconds to wait."""
        now = time.monotonic()
        rate = per_minute / 60.0
        bucket = self._buckets.get(integration_id)
        if bucket is None:
            bucket = self._buckets[integration_id] = _Bucket(float(per_minute), now)
        bucket.tokens = min(float(per_minute), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return max(1.0, math.ceil((cost - bucket.tokens) / rate))
