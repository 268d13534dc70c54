"""The naive baseline: the same answers computed at request time from a raw events table.

Every message the benchmark sent (duplicates and superseded revisions included) is one row
of `naive.events`; the tree is `naive.units` (id, parent). A summary walks the node's
subtree with a recursive CTE, keeps the latest revision of each activity in the month
(DISTINCT ON), and adds up the metrics; children does the same for every child's subtree.
It lives in its own database on the same PostgreSQL, queried with asyncpg.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import asyncpg
import httpx

from bench.generate import CHECKED_METRICS, PD, Tree
from huibao_contracts.calendar import CalendarRules
from huibao_contracts.periods import Period

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS naive;
CREATE TABLE naive.units (
    id text PRIMARY KEY, parent text, level text NOT NULL, name text NOT NULL
);
CREATE INDEX ON naive.units (parent);
CREATE TABLE naive.events (
    source text NOT NULL, id text NOT NULL, activity_id text NOT NULL, revision int NOT NULL,
    unit text NOT NULL, type text NOT NULL, month text NOT NULL, on_time boolean,
    retracted boolean NOT NULL, attendees int, audience int, participants int,
    volunteers int, served int, items int
);
"""

INDEX = "CREATE INDEX ON naive.events (unit, month); ANALYZE naive.units; ANALYZE naive.events;"

_SUMS = """
    count(*) FILTER (WHERE type = 'huibao.party_day.held.v1' AND NOT retracted) AS "party_day.held",
    count(*) FILTER (WHERE type = 'huibao.party_day.held.v1' AND NOT retracted AND on_time)
        AS "party_day.on_time",
    count(*) FILTER (WHERE type = 'huibao.party_day.held.v1' AND NOT retracted AND NOT on_time)
        AS "party_day.late",
    coalesce(sum(attendees) FILTER (WHERE type = 'huibao.party_day.held.v1' AND NOT retracted), 0)
        AS "party_day.attendees",
    count(*) FILTER (WHERE type = 'huibao.lesson.delivered.v1' AND NOT retracted)
        AS "lesson.delivered",
    coalesce(sum(audience) FILTER (WHERE type = 'huibao.lesson.delivered.v1' AND NOT retracted), 0)
        AS "lesson.audience",
    count(*) FILTER (WHERE type = 'huibao.training.held.v1' AND NOT retracted)
        AS "training.sessions",
    coalesce(sum(participants) FILTER (WHERE type = 'huibao.training.held.v1'), 0)
        AS "training.participants",
    count(*) FILTER (WHERE type = 'huibao.outreach.held.v1') AS "outreach.sessions",
    coalesce(sum(audience) FILTER (WHERE type = 'huibao.outreach.held.v1'), 0)
        AS "outreach.audience",
    coalesce(sum(volunteers), 0) AS "volunteer.volunteers",
    coalesce(sum(served), 0) AS "volunteer.served",
    coalesce(sum(items) FILTER (WHERE type = 'huibao.feedback.collected.v1'), 0)
        AS "feedback.collected",
    coalesce(sum(items) FILTER (WHERE type = 'huibao.feedback.resolved.v1'), 0)
        AS "feedback.resolved",
    count(*) FILTER (WHERE type = 'huibao.screening.held.v1') AS "screening.held"
"""

SUMMARY = f"""
WITH RECURSIVE sub(id) AS (
    SELECT $1::text
    UNION ALL
    SELECT u.id FROM naive.units u JOIN sub ON u.parent = sub.id
), latest AS (
    SELECT DISTINCT ON (e.activity_id) e.*
    FROM naive.events e JOIN sub ON e.unit = sub.id
    WHERE e.month = $2
    ORDER BY e.activity_id, e.revision DESC
)
SELECT {_SUMS} FROM latest
"""

CHILDREN = f"""
WITH RECURSIVE sub(id, top) AS (
    SELECT id, id FROM naive.units WHERE parent = $1
    UNION ALL
    SELECT u.id, sub.top FROM naive.units u JOIN sub ON u.parent = sub.id
), latest AS (
    SELECT DISTINCT ON (e.activity_id) e.*, sub.top
    FROM naive.events e JOIN sub ON e.unit = sub.id
    WHERE e.month = $2
    ORDER BY e.activity_id, e.revision DESC
), agg AS (
    SELECT top, {_SUMS} FROM latest GROUP BY top
)
SELECT u.id, u.name, u.level, agg.*,
       rank() OVER (ORDER BY coalesce(agg."party_day.held", 0) DESC) AS rank
FROM naive.units u LEFT JOIN agg ON agg.top = u.id
WHERE u.parent = $1
ORDER BY rank, u.id
LIMIT 100
"""

COLUMNS = (
    "source", "id", "activity_id", "revision", "unit", "type", "month", "on_time", "retracted",
    "attendees", "audience", "participants", "volunteers", "served", "items",
)  # fmt: skip


def row_of(ev: dict[str, Any], cal: CalendarRules) -> tuple[Any, ...]:
    """One raw message as a row; a Party Day's on-time flag from its own `time`."""
    data = ev["data"]
    day = dt.date.fromisoformat(str(data["date"]))
    month = Period.month_of(day)
    on_time = None
    if ev["type"] == PD:
        on_time = cal.is_on_time(month, dt.datetime.fromisoformat(str(ev["time"])))
    etype = str(ev["type"])

    def n(key: str) -> int | None:
        v = data.get(key)
        return int(v) if isinstance(v, int | float) else None

    return (
        ev["source"], ev["id"], data["activity_id"], int(data.get("revision", 1)), ev["subject"],
        etype, str(month), on_time, bool(data.get("retracted", False)), n("attendees"),
        n("audience"), n("participants"), n("volunteers"), n("served"), n("items"),
    )  # fmt: skip


class NaiveBaseline:
    """A raw events table and recursive queries at request time."""

    pool_size = 4

    def __init__(self, url: str) -> None:
        self.url = url
        self.pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        self.pool = await asyncpg.create_pool(self.url, min_size=1, max_size=self.pool_size)

    async def stop(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    def _pool(self) -> asyncpg.Pool:
        if self.pool is None:
            raise RuntimeError("not started")
        return self.pool

    async def load(self, tree: Tree, *streams: Iterable[dict[str, Any]]) -> int:
        cal = CalendarRules()
        rows = [row_of(ev, cal) for stream in streams for ev in stream]
        async with self._pool().acquire() as conn:
            await conn.execute(SCHEMA)
            await conn.copy_records_to_table(
                "units",
                schema_name="naive",
                records=[(u["id"], u.get("parent"), u["level"], u["name"]) for u in tree.units],
            )
            await conn.copy_records_to_table(
                "events", schema_name="naive", records=rows, columns=COLUMNS
            )
            await conn.execute(INDEX)
        return len(rows)

    async def summary(self, node: str, month: str) -> dict[str, int]:
        row = await self._pool().fetchrow(SUMMARY, node, month)
        return {m: int(row[m] or 0) for m in CHECKED_METRICS} if row else {}

    async def children(self, node: str, month: str) -> list[dict[str, Any]]:
        return [dict(r) for r in await self._pool().fetch(CHILDREN, node, month)]

    async def check(
        self, http: httpx.AsyncClient, *, roll_url: str, tree: Tree, month: str
    ) -> dict[str, Any]:
        """Does the baseline give the rollup's answer? (city and the first county, one month)"""
        out: dict[str, Any] = {"month": month}
        for node in (tree.root, tree.of_level("county")[0]):
            r = await http.get(f"{roll_url}/v1/nodes/{node}/summary", params={"period": month})
            api = {m: int(r.json()["metrics"].get(m) or 0) for m in CHECKED_METRICS}
            naive = await self.summary(node, month)
            out[node] = (
                "same"
                if api == naive
                else {k: (api[k], naive.get(k)) for k in api if api[k] != naive.get(k)}
            )
        return out
