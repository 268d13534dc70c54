"""Rebuild and verify: aggregates recomputed from the stored facts, in SQL.

The recomputation deliberately does not reuse the Python fold: it expands every fact over
its stored path and the month, quarter and year of its date, and sums the contributions.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import asyncpg

REBUILT = """
SELECT n.node, p.period, c.key AS metric, sum(c.value::numeric) AS value
FROM rollup.facts f
CROSS JOIN LATERAL unnest(f.path) AS n(node)
CROSS JOIN LATERAL (VALUES (to_char(f.date, 'YYYY-MM')), (to_char(f.date, 'YYYY-"Q"Q')),
                           (to_char(f.date, 'YYYY'))) AS p(period)
CROSS JOIN LATERAL jsonb_each_text(f.contribution) AS c(key, value)
GROUP BY 1, 2, 3
"""

DIFFERENCES = f"""
WITH rebuilt AS ({REBUILT}),
live AS (SELECT node, period, metric, sum(value) AS value FROM rollup.agg GROUP BY 1, 2, 3)
SELECT coalesce(l.node, r.node) AS node, coalesce(l.period, r.period) AS period,
       coalesce(l.metric, r.metric) AS metric,
       coalesce(l.value, 0) AS live, coalesce(r.value, 0) AS rebuilt
FROM live l FULL OUTER JOIN rebuilt r
  ON l.node = r.node AND l.period = r.period AND l.metric = r.metric
WHERE coalesce(l.value, 0) <> coalesce(r.value, 0)
ORDER BY 1, 2, 3
"""


@dataclass(frozen=True, slots=True)
class Difference:
    """One aggregate whose live value differs from the value rebuilt from facts."""

    node: str
    period: str
    metric: str
    live: Decimal
    rebuilt: Decimal


async def differences(pool: asyncpg.Pool) -> list[Difference]:
    """Live aggregates that differ from a rebuild, read from one consistent snapshot."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        rows = await conn.fetch(DIFFERENCES)
    return [Difference(r["node"], r["period"], r["metric"], r["live"], r["rebuilt"]) for r in rows]


async def rebuild(pool: asyncpg.Pool) -> int:
    """Replace every aggregate with the rebuild from facts; the number of rows written.

    Consumers wait while it runs (the tables are locked against writes, not reads).
    """
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("LOCK TABLE rollup.facts, rollup.agg IN SHARE ROW EXCLUSIVE MODE")
        await conn.execute("DELETE FROM rollup.agg")
        status: str = await conn.execute(
            f"INSERT INTO rollup.agg (node, period, metric, shard, value)"
            f" SELECT node, period, metric, 0, value FROM ({REBUILT}) AS r WHERE value <> 0"
        )
    return int(status.rsplit(" ", 1)[-1])
