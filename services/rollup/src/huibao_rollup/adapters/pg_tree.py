"""The versioned tree in PostgreSQL, and the facts a tree change may re-attribute."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import asyncpg

from huibao_rollup.adapters.pg_write import Conn, fact_from_row
from huibao_rollup.domain.model import Fact
from huibao_rollup.domain.tree import UnitVersion

_COLUMNS = "unit, effective, seq, kind, name, level, parent, members, opened, closed, merged_into"


LOAD_CHUNK = 20_000
"""Rows read per round trip when loading the tree: a million-unit tree never has all its
rows in memory as driver records at once (they cost more than the versions made of them)."""


async def load_versions(pool: asyncpg.Pool) -> list[UnitVersion]:
    """Every stored version, in (unit, effective) order (read through a cursor)."""
    out: list[UnitVersion] = []
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        cursor = await conn.cursor(
            f"SELECT {_COLUMNS} FROM rollup.unit_versions ORDER BY unit, effective"
        )
        while rows := await cursor.fetch(LOAD_CHUNK):
            out += [UnitVersion(*r) for r in rows]  # the columns in the fields' order
    return out


async def upsert_versions(conn: Conn, versions: Sequence[UnitVersion]) -> None:
    """Store versions; a stored version with a higher seq for the same key wins."""
    if not versions:
        return
    latest: dict[tuple[str, dt.date], UnitVersion] = {}
    for v in versions:
        key = (v.unit, v.effective)
        if key not in latest or latest[key].seq < v.seq:
            latest[key] = v
    vs = [latest[k] for k in sorted(latest)]
    await conn.execute(
        f"""INSERT INTO rollup.unit_versions AS t ({_COLUMNS})
        SELECT * FROM unnest($1::text[], $2::date[], $3::bigint[], $4::text[], $5::text[],
                             $6::text[], $7::text[], $8::int[], $9::date[], $10::date[],
                             $11::text[])
        ON CONFLICT (unit, effective) DO UPDATE SET
            seq = EXCLUDED.seq, kind = EXCLUDED.kind, name = EXCLUDED.name,
            level = EXCLUDED.level, parent = EXCLUDED.parent, members = EXCLUDED.members,
            opened = EXCLUDED.opened, closed = EXCLUDED.closed, merged_into = EXCLUDED.merged_into
        WHERE t.seq < EXCLUDED.seq""",
        [v.unit for v in vs],
        [v.effective for v in vs],
        [v.seq for v in vs],
        [v.kind for v in vs],
        [v.name for v in vs],
        [v.level for v in vs],
        [v.parent for v in vs],
        [v.members for v in vs],
        [v.opened for v in vs],
        [v.closed for v in vs],
        [v.merged_into for v in vs],
    )


async def lock_facts_through(conn: Conn, unit: str, since: dt.date) -> list[Fact]:
    """Facts attributed through `unit` and dated on or after `since`, locked in id order."""
    rows = await conn.fetch(
        "SELECT activity_id, unit, type, date, revision, message_key, first_reported_at,"
        " on_time, retracted, contribution, path FROM rollup.facts"
        " WHERE path @> ARRAY[$1]::text[] AND date >= $2 ORDER BY activity_id FOR UPDATE",
        unit,
        since,
    )
    return [fact_from_row(r) for r in rows]
