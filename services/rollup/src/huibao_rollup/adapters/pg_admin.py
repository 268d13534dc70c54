"""Rebuild and verify: aggregates recomputed from the stored facts, in SQL.

The recomputation deliberately does not reuse the Python fold: it expands every fact over
its stored path and the month of its date, and sums the contributions per metric. Live
rows are compared metric by metric, summed over shards; quarters and years are sums of
their months at query time, so months equal means every period equal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from huibao_rollup.domain.aggregation import SLOTS

REBUILT_FROM = """
SELECT n.node, date_trunc('month', f.date)::date AS month, c.key AS metric,
       sum(c.value::numeric) AS value
FROM rollup.facts f
CROSS JOIN LATERAL unnest(f.path) AS n(node)
CROSS JOIN LATERAL jsonb_each_text(f.contribution) AS c(key, value)
{where}
GROUP BY 1, 2, 3
"""

LIVE_FROM = """
SELECT a.node, a.month, coalesce(s.metric, 'slot ' || u.i) AS metric, sum(u.x) AS value
FROM rollup.monthly a
CROSS JOIN LATERAL unnest(a.v) WITH ORDINALITY AS u(x, i)
LEFT JOIN unnest($1::text[]) WITH ORDINALITY AS s(metric, i) ON s.i = u.i
{where}
GROUP BY 1, 2, 3
"""

IN_FACT_MONTH = "WHERE f.date >= $2 AND f.date < ($2::date + interval '1 month')"
IN_LIVE_MONTH = "WHERE a.month = $2"
REBUILT = REBUILT_FROM.format(where="")
LIVE = LIVE_FROM.format(where="")


def _differences(rebuilt: str, live: str) -> str:
    return f"""
WITH rebuilt AS ({rebuilt}), live AS ({live})
SELECT coalesce(l.node, r.node) AS node,
       to_char(coalesce(l.month, r.month), 'YYYY-MM') AS period,
       coalesce(l.metric, r.metric) AS metric,
       coalesce(l.value, 0) AS live, coalesce(r.value, 0) AS rebuilt
FROM live l FULL OUTER JOIN rebuilt r
  ON l.node = r.node AND l.month = r.month AND l.metric = r.metric
WHERE coalesce(l.value, 0) <> coalesce(r.value, 0)
ORDER BY 1, 2, 3
"""


def _rebuild(rebuilt: str) -> str:
    return f"""
INSERT INTO rollup.monthly (node, month, shard, v)
SELECT r.node, r.month, 0, rollup.vsum(rollup.vcell(s.i::int, r.value))
FROM ({rebuilt}) AS r
JOIN unnest($1::text[]) WITH ORDINALITY AS s(metric, i) ON s.metric = r.metric
WHERE r.value <> 0
GROUP BY r.node, r.month
"""


DIFFERENCES = _differences(REBUILT, LIVE)
DIFFERENCES_IN_MONTH = _differences(
    REBUILT_FROM.format(where=IN_FACT_MONTH), LIVE_FROM.format(where=IN_LIVE_MONTH)
)
REBUILD = _rebuild(REBUILT)
REBUILD_MONTH = _rebuild(REBUILT_FROM.format(where=IN_FACT_MONTH))
MONTHS = """
SELECT date_trunc('month', date)::date AS month FROM rollup.facts
UNION SELECT month FROM rollup.monthly
ORDER BY 1
"""
"""Every month that holds a fact or a live aggregate: the steps of a long rebuild or verify."""

Progress = Callable[[int, int], None]
"""Told (months done, months in all) as a rebuild or a verify moves on."""


def no_progress(done: int, total: int) -> None:
    """No one watches."""


@dataclass(frozen=True, slots=True)
class Difference:
    """One aggregate (of a month) whose live value differs from the rebuild from facts."""

    node: str
    period: str
    metric: str
    live: Decimal
    rebuilt: Decimal


async def differences(pool: asyncpg.Pool, progress: Progress = no_progress) -> list[Difference]:
    """Live aggregates that differ from a rebuild, read from one consistent snapshot, a
    month at a time (`progress` is told after each month)."""
    found: list[Difference] = []
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        months = [r["month"] for r in await conn.fetch(MONTHS)]
        progress(0, len(months))
        for done, month in enumerate(months, 1):
            rows = await conn.fetch(DIFFERENCES_IN_MONTH, list(SLOTS), month)
            found += [
                Difference(r["node"], r["period"], r["metric"], r["live"], r["rebuilt"])
                for r in rows
            ]
            progress(done, len(months))
    return found


async def rebuild(pool: asyncpg.Pool, progress: Progress = no_progress) -> int:
    """Replace every aggregate with the rebuild from facts; the number of rows written.

    One transaction, a month at a time (`progress` is told after each month); consumers
    wait while it runs (the tables are locked against writes, not reads).
    """
    written = 0
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("LOCK TABLE rollup.facts, rollup.monthly IN SHARE ROW EXCLUSIVE MODE")
        await conn.execute("DELETE FROM rollup.monthly")
        months = [
            r["month"]
            for r in await conn.fetch(
                "SELECT DISTINCT date_trunc('month', date)::date AS month FROM rollup.facts"
                " ORDER BY 1"
            )
        ]
        progress(0, len(months))
        for done, month in enumerate(months, 1):
            status: str = await conn.execute(REBUILD_MONTH, list(SLOTS), month)
            written += int(status.rsplit(" ", 1)[-1])
            progress(done, len(months))
    return written
