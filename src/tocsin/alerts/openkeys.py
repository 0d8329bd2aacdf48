"""SQLite: the open alerts of each (integration, dedup key), kept in memory instead of in an index.

Dedup keys are hashes, so an index on them takes each new alert to a random page of it. Once the index
outgrows what one commit writes, every new alert costs SQLite a page of the write-ahead log: measured
here at 290,000 open alerts, 8 us of the insert and 12 us of the commit of each, two thirds of what a
storm of new alerts spends in the turn to write the file (bench/RESULTS.md). So on SQLite nothing
indexes open alerts by key; each process keeps this map instead, and every lookup is made exact
against the database:

- `catch_up` reads the rows added since it last looked (`id > last`). Alerts are never deleted nor
  reopened and SQLite gives each new row a higher id than every committed one, so after a catch-up every
  open alert with an id up to `last` is in the map.
- `lookup` asks the database only for the map's candidate ids and for rows above `last`, filtered by
  integration, keys and status: the same open alerts an index would find, whatever the map has missed
  since, and whatever another process wrote meanwhile.
- `opened` takes in the alerts a committed storm-lane transaction opened, without reading them back,
  when their ids show that no other row came in between.

Only one alert per key is ever open: on SQLite every write transaction holds the turn to write the file,
and the lookup and the insert that follows it are in one. PostgreSQL keeps its unique index
(`uq_alerts_open_dedup`) and looks alerts up by it.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from tocsin.alerts.models import OPEN_STATUSES
from tocsin.db.raw import Plan, Raw, Step

log = logging.getLogger("tocsin.alerts")
T = TypeVar("T")

_MAX = "SELECT coalesce(max(id), 0) FROM alerts"
# Rows as one JSON text: a statement that returns rows one by one takes the GIL back for each, and under
# load each of those waits for the event loop's thread (10-15 ms for 1,600 rows, against 1 ms).
_ROWS = "SELECT json_group_array(json_array(id, integration_id, dedup_key, status)) FROM alerts WHERE id > ?"
_OPEN = _ROWS + " AND status != 'resolved'"
_COUNT = f"SELECT count(*) FROM alerts WHERE status IN {OPEN_STATUSES!r}"  # by ix_alerts_status_ends
_FIRST_CHECK = 10_000


def _next_check(size: int) -> int:
    return size + max(_FIRST_CHECK, size // 2)


_FIND = (
    "SELECT id, dedup_key, incident_id{extra} FROM alerts WHERE {ids}"
    " AND integration_id = ? AND status != 'resolved' AND dedup_key IN ({keys})"
)


@dataclass(slots=True)
class _Map:
    by_integration: dict[int, dict[str, int]] = field(default_factory=dict)
    last: int = 0  # every open alert with an id up to this one is in the map
    size: int = 0

    def take(self, rows: Sequence[Sequence[Any]]) -> int:
        """Take in the open ones of these (id, integration id, dedup key, status); the highest id."""
        newest = 0
        for id_, integration_id, key, status in rows:
            newest = max(newest, id_)
            if status == "resolved":
                continue
            keys = self.by_integration.setdefault(integration_id, {})
            if key not in keys:
                self.size += 1
            keys[key] = id_
        return newest


class OpenKeys:
    """One process's map of open alerts for one SQLite database: integration id -> dedup key -> alert id.

    Keys of alerts resolved since they were read stay in the map (the lookup leaves them out). Each
    time the map has grown by half, the open alerts are counted in the background (on a connection of
    its own, by index); if the map holds more than twice as many keys, it is read afresh there and taken
    on at the next catch-up.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.map = _Map()
        self._fresh: _Map | None = None
        self._pruning: asyncio.Task[None] | None = None
        self._check_at = _FIRST_CHECK
        self.caught_at = 0  # the map's `last` after the latest plan's catch-up (`caught_up`)

    async def ready(self, raw: Raw) -> None:
        """Before the map is used: the first use reads every open alert; a map read afresh is taken on;
        a count of the open alerts is started if the map has grown enough. One at a time per process,
        and never while a plan reads the map: callers hold the database's write lock (`Database.raw`,
        `Database.transaction`)."""
        if self._fresh is not None:
            self.map, self._fresh = self._fresh, None
        if self.map.last == 0:
            self.map = await _read_all(raw)
            self._check_at = _next_check(self.map.size)
        elif self.map.size > self._check_at and self._pruning is None:
            self._pruning = asyncio.create_task(self._prune(), name="tocsin-open-alert-keys")

    async def close(self) -> None:
        """Cancel the background count, if one runs: left to die with its event loop, its connection
        would stay checked out of the pool, its read open."""
        pruning = self._pruning
        if pruning is not None:
            pruning.cancel()
            await asyncio.gather(pruning, return_exceptions=True)

    async def catch_up(self, raw: Raw) -> None:
        """`ready`, then the alerts added since the last catch-up taken in, in a trip of their own."""
        await self.ready(raw)
        self._take((await raw.run(self._added()))[0])

    def caught_up(self, plan: Plan[T]) -> Plan[T]:
        """`plan`, after `ready`, with the catch-up riding in its first trip: the map it reads is the one
        before (its lookups read every row added since), and the next lookups have what it added."""
        try:
            steps = next(plan)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        rows = yield [self._added(), *steps]
        self._take(rows[0])
        self.caught_at = self.map.last
        sent = rows[1:]
        while True:
            try:
                steps = plan.send(sent)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            sent = yield steps

    def opened(self, since: int, rows: Sequence[tuple[int, str, int]]) -> None:
        """The (integration id, dedup key, id) of the alerts a committed transaction opened after it
        caught up to `since`: taken in without reading them back, if their ids show that no other row
        came in between. SQLite gives a new row the highest id plus one, so ids since + 1, since + 2 ...
        with no gap are all this transaction's; otherwise the next catch-up reads them as usual."""
        ids = sorted(id_ for _, _, id_ in rows)
        if not ids or self.map.last != since or ids[0] != since + 1 or ids[-1] - ids[0] + 1 != len(ids):
            return
        self.map.last = self.map.take(
            [(id_, integration_id, key, "firing") for integration_id, key, id_ in rows]
        )

    def _added(self) -> Step:
        # Not checked again in the turn to write (`Raw.drive`'s read-ahead): what another process adds
        # meanwhile changes it, and the lookups already cover it.
        return Step(_ROWS, [self.map.last], checked=False)

    def _take(self, rows: list[tuple[Any, ...]]) -> None:
        self.map.last = max(self.map.last, self.map.take(orjson.loads(rows[0][0])))

    async def _prune(self) -> None:
        size = self.map.size
        try:
            async with self.engine.connect() as connection:
                raw = await Raw.of(connection)
                ((open_now,),) = (await raw.run(Step(_COUNT)))[0]
                if size > 2 * open_now + _FIRST_CHECK:
                    fresh = await _read_all(raw)
                    self._fresh, size = fresh, fresh.size
        except Exception:
            log.exception("counting or reading the open alerts failed; the map grows on")
        finally:
            self._check_at = _next_check(size)
            self._pruning = None

    def lookup(self, integration_id: int, keys: Sequence[str], extra: str = "") -> Step:
        """The statement that reads the open alerts among `keys` (id, dedup key, incident id, then the
        `extra` columns): the map's candidates and anything newer than the last catch-up."""
        known = self.map.by_integration.get(integration_id, {})
        ids = [known[key] for key in keys if key in known]
        sql = _FIND.format(
            extra=f", {extra}" if extra else "",
            # Each by its id (an empty IN list would make SQLite scan the table instead).
            ids=f"(id IN ({', '.join('?' * len(ids))}) OR id > ?)" if ids else "id > ?",
            keys=", ".join("?" * len(keys)),
        )
        return Step(sql, [*ids, self.map.last, integration_id, *keys])


async def _read_all(raw: Raw) -> _Map:
    """Every open alert, exact up to the newest id read first (rows after it come again next time);
    the map made on a thread of its own (hundreds of thousands of rows: not on the event loop)."""
    top, rows = await raw.run(Step(_MAX), Step(_OPEN, [0]))
    found = _Map(last=top[0][0])
    await asyncio.to_thread(lambda: found.take(orjson.loads(rows[0][0])))
    return found


_maps: weakref.WeakKeyDictionary[AsyncEngine, OpenKeys] = weakref.WeakKeyDictionary()


async def close(engine: AsyncEngine) -> None:
    """Close this process's map of the database behind `engine`, if it has one."""
    found = _maps.get(engine)
    if found is not None:
        await found.close()


def of(engine: AsyncEngine) -> OpenKeys:
    """The map of the database behind `engine`, for this process."""
    found = _maps.get(engine)
    if found is None:
        found = _maps[engine] = OpenKeys(engine)
    return found
