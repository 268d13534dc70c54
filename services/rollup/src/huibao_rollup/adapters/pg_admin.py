"""Rebuild and verify: aggregates recomputed from the stored facts, in SQL.

The recomputation deliberately does not reuse the Python fold: it expands every fact over
its stored path and the month of its date, and sums the contributions per metric. Live
rows are compared metric by metric, summed over shards; quarters and years are sums of
their months at query time, so months equal means every period equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from huibao_rollup.domain.aggregation import SLOTS

REBUILT = """
SELECT n.node, date_trunc('month', f.date)::date AS month, c.key AS metric,
       sum(c.value::numeric) AS value
FROM rollup.facts f
CROSS JOIN LATERAL unnest(f.path) AS n(node)
CROSS JOIN LATERAL jsonb_each_text(f.contribution) AS c(key, value)
GROUP BY 1, 2, 3
"""

LIVE = """
SELECT a.node, a.month, coalesce(s.metric, 'slot ' || u.i) AS metric, sum(u.x) AS value
FROM rollup.monthly a
CROSS JOIN LATERAL unnest(a.v) WITH ORDINALITY AS u(x, i)
LEFT JOIN unnest($1::text[]) WITH ORDINALITY AS s(metric, i) ON s.i = u.i
GROUP BY 1, 2, 3
"""

DIFFERENCES = f"""
WITH rebuilt AS ({REBUILT}), live AS ({LIVE})
SELECT coalesce(l.node, r.node) AS node,
       to_char(coalesce(l.month, r.month), 'YYYY-MM') AS period,
       coalesce(l.metric, r.metric) AS metric,
       coalesce(l.value, 0) AS live, coalesce(r.value, 0) AS rebuilt
FROM live l FULL OUTER JOIN rebuilt r
  ON l.node = r.node AND l.month = r.month AND l.metric = r.metric
WHERE coalesce(l.value, 0) <> coalesce(r.value, 0)
ORDER BY 1, 2, 3
"""

REBUILD = f"""
INSERT INTO rollup.monthly (node, month, shard, v)
SELECT r.node, r.month, 0, rollup.vsum(rollup.vcell(s.i::int, r.value))
FROM ({REBUILT}) AS r
JOIN unnest($1::text[]) WITH ORDINALITY AS s(metric, i) ON s.metric = r.metric
WHERE r.value <> 0
GROUP BY r.node, r.month
"""


@dataclass(frozen=True, slots=True)
class Difference:
    """One aggregate (of a month) whose live value differs from the rebuild from facts."""

    node: str
    period: str
    metric: str
    live: Decimal
    rebuilt: Decimal


async def differences(pool: asyncpg.Pool) -> list[Difference]:
    """Live aggregates that differ from a rebuild, read from one consistent snapshot."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        rows = await conn.fetch(DIFFERENCES, list(SLOTS))
    return [Difference(r["node"], r["period"], r["metric"], r["live"], r["rebuilt"]) for r in rows]


async def rebuild(pool: asyncpg.Pool) -> int:
    """Replace every aggregate with the rebuild from facts; the number of rows written.

    Consumers wait while it runs (the tables are locked against writes, not reads).
    """
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("LOCK TABLE rollup.facts, rollup.monthly IN SHARE ROW EXCLUSIVE MODE")
        await conn.execute("DELETE FROM rollup.monthly")
        status: str = await conn.execute(REBUILD, list(SLOTS))
    return int(status.rsplit(" ", 1)[-1])
