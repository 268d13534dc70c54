"""The read side in PostgreSQL: aggregate sums over shards and months, and Party Day facts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

import asyncpg

from huibao_contracts.activities import PARTY_DAY_TYPE
from huibao_contracts.periods import Period
from huibao_rollup.domain.aggregation import SLOTS
from huibao_rollup.domain.completeness import Held

Sums = dict[tuple[str, str], dict[str, Decimal]]
"""(node, period) → metric → value summed over shards and months."""


async def sums(pool: asyncpg.Pool, nodes: Sequence[str], periods: Sequence[Period]) -> Sums:
    """Aggregate values of these nodes in these periods (one index range scan per node).

    PostgreSQL sums the shards slot by slot and sends one array per (node, month), so a
    listing of 35 children is 35 rows, not one row per child and metric."""
    if not nodes or not periods:
        return {}
    rows = await pool.fetch(
        "SELECT node, month, array_agg(value ORDER BY i) AS v FROM ("
        " SELECT a.node, a.month, u.i, sum(u.x) AS value"
        " FROM rollup.monthly a CROSS JOIN LATERAL unnest(a.v) WITH ORDINALITY AS u(x, i)"
        " WHERE a.node = ANY($1::text[]) AND a.month BETWEEN $2 AND $3"
        " GROUP BY a.node, a.month, u.i) s GROUP BY node, month",
        list(nodes),
        min(p.first_day for p in periods),
        max(p.last_day for p in periods),
    )
    periods_of: dict[dt.date, list[str]] = {}
    for p in periods:
        for m in p.months():
            periods_of.setdefault(m.first_day, []).append(str(p))
    out: Sums = {}
    for node, month, values in rows:
        names = periods_of.get(month, ())
        for metric, value in zip(SLOTS, values, strict=False):
            if not value:
                continue
            for name in names:
                into = out.setdefault((node, name), {})
                into[metric] = into.get(metric, _ZERO) + value
    return out


_ZERO = Decimal(0)


async def party_days(pool: asyncpg.Pool, node: str, first: dt.date, last: dt.date) -> list[Held]:
    """Party Day reports (not retracted) counted under `node` and dated in [first, last]:
    the facts whose contributions the sums add up, each flagged as counted in
    `party_day.held` (its unit was expected) or in `party_day.unexpected`."""
    rows = await pool.fetch(
        "SELECT unit, on_time, first_reported_at,"
        " contribution ? 'party_day.unexpected' AS unexpected FROM rollup.facts"
        " WHERE type = $1 AND date BETWEEN $2 AND $3 AND NOT retracted"
        " AND path @> ARRAY[$4]::text[]",
        PARTY_DAY_TYPE,
        first,
        last,
        node,
    )
    return [
        Held(r["unit"], bool(r["on_time"]), r["first_reported_at"], not r["unexpected"])
        for r in rows
    ]
