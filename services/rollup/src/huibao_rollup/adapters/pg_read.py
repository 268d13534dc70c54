"""The read side in PostgreSQL: aggregate sums over shards, and Party Day facts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

import asyncpg

from huibao_contracts.activities import PARTY_DAY_TYPE
from huibao_rollup.domain.completeness import Held

Sums = dict[tuple[str, str], dict[str, Decimal]]
"""(node, period) → metric → value summed over shards."""


async def sums(pool: asyncpg.Pool, nodes: Sequence[str], periods: Sequence[str]) -> Sums:
    """Aggregate values of these nodes in these periods."""
    rows = await pool.fetch(
        "SELECT node, period, metric, sum(value) AS value FROM rollup.agg"
        " WHERE node = ANY($1::text[]) AND period = ANY($2::text[])"
        " GROUP BY node, period, metric",
        list(nodes),
        list(periods),
    )
    out: Sums = {}
    for r in rows:
        out.setdefault((r["node"], r["period"]), {})[r["metric"]] = r["value"]
    return out


async def party_days(pool: asyncpg.Pool, node: str, first: dt.date, last: dt.date) -> list[Held]:
    """Party Day reports (not retracted) counted under `node` and dated in [first, last]."""
    rows = await pool.fetch(
        "SELECT unit, on_time, first_reported_at FROM rollup.facts"
        " WHERE type = $1 AND date BETWEEN $2 AND $3 AND NOT retracted"
        " AND path @> ARRAY[$4]::text[]",
        PARTY_DAY_TYPE,
        first,
        last,
        node,
    )
    return [Held(r["unit"], bool(r["on_time"]), r["first_reported_at"]) for r in rows]
