"""The write side in PostgreSQL: facts, aggregate deltas and consumed positions.

Everything a batch changes is written in the caller's transaction with a handful of
statements, each taking the batch as one JSON document (`json_to_recordset`): aggregate
rows in sorted key order (a fixed lock order, so concurrent writers never deadlock), each
row's metric deltas as one array added to the stored one (`rollup.vadd`); new facts
inserted and replaced facts updated by `activity_id` (an insert racing another replica's
fails on the key and the batch is retried, never overwritten); positions updated per
partition. A partition's position row is locked first and compared with what the consumer
expects: when another replica moved it meanwhile (a rebalance overtook this one), the
batch is refused and nothing is written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import asyncpg

from huibao_rollup.domain.aggregation import SLOT, Row, Vector
from huibao_rollup.domain.model import Fact

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
"""A connection, pooled or not."""

SEP = "/"
"""Joins path ids in transit; org-unit ids never contain it."""

_FACT_COLUMNS = (
    "activity_id, unit, type, date, revision, message_key, first_reported_at, on_time,"
    " retracted, contribution, path"
)


def fact_from_row(row: asyncpg.Record) -> Fact:
    """A stored fact."""
    return Fact(
        activity_id=row["activity_id"],
        unit=row["unit"],
        type=row["type"],
        date=row["date"],
        revision=row["revision"],
        message_key=row["message_key"],
        first_reported_at=row["first_reported_at"],
        on_time=row["on_time"],
        retracted=row["retracted"],
        contribution=dict(row["contribution"]),
        path=tuple(row["path"]),
    )


async def lock_facts(conn: Conn, activity_ids: Sequence[str]) -> dict[str, Fact]:
    """Stored facts of these activities, locked (in id order) until the transaction ends."""
    rows = await conn.fetch(
        f"SELECT {_FACT_COLUMNS} FROM rollup.facts"
        " WHERE activity_id IN (SELECT json_array_elements_text($1::json))"
        " ORDER BY activity_id FOR UPDATE",
        sorted(set(activity_ids)),
    )
    return {r["activity_id"]: fact_from_row(r) for r in rows}


def _fact_rows(facts: Sequence[Fact]) -> list[dict[str, object]]:
    return [
        {
            "a": f.activity_id,
            "u": f.unit,
            "t": f.type,
            "d": f.date,
            "r": f.revision,
            "k": f.message_key,
            "f": f.first_reported_at,
            "o": f.on_time,
            "x": f.retracted,
            "c": f.contribution,
            "p": SEP.join(f.path),
        }
        for f in facts
    ]


# A batch travels as one JSON document per statement (json_to_recordset), not one array
# per column: asyncpg checks every element of an array parameter against
# collections.abc in Python, which cost more CPU than folding the batch.
_FACT_RECORDS = """json_to_recordset($1::json) AS s(a text, u text, t text, d date, r int,
                    k text, f timestamptz, o bool, x bool, c jsonb, p text)"""


async def insert_facts(conn: Conn, facts: Sequence[Fact]) -> None:
    """Insert facts of activities not stored yet (a key already taken fails the batch)."""
    if not facts:
        return
    await conn.execute(
        f"""INSERT INTO rollup.facts ({_FACT_COLUMNS})
        SELECT a, u, t, d, r, k, f, o, x, c, string_to_array(p, '{SEP}')
        FROM {_FACT_RECORDS}""",
        _fact_rows(facts),
    )


async def update_facts(conn: Conn, facts: Sequence[Fact]) -> None:
    """Replace stored facts (locked by `lock_facts`) with their new revision."""
    if not facts:
        return
    await conn.execute(
        f"""UPDATE rollup.facts SET
            unit = s.u, type = s.t, date = s.d, revision = s.r, message_key = s.k,
            first_reported_at = s.f, on_time = s.o, retracted = s.x, contribution = s.c,
            path = string_to_array(s.p, '{SEP}'), updated_at = now()
        FROM {_FACT_RECORDS} WHERE activity_id = s.a""",
        _fact_rows(facts),
    )


async def update_paths(conn: Conn, moved: Mapping[str, tuple[str, ...]]) -> None:
    """Record the path each re-attributed fact now counts through."""
    if not moved:
        return
    ids = sorted(moved)
    await conn.execute(
        f"""UPDATE rollup.facts f SET path = string_to_array(s.p, '{SEP}'), updated_at = now()
        FROM unnest($1::text[], $2::text[]) AS s(a, p) WHERE f.activity_id = s.a""",
        ids,
        [SEP.join(moved[i]) for i in ids],
    )


def vector_literal(vec: Vector) -> str:
    """A row's deltas as a `numeric[]` literal in slot order, trailing zeros left out."""
    width = max(SLOT[m] for m in vec) + 1
    values: list[object] = [0] * width
    for m, v in vec.items():
        values[SLOT[m]] = v
    return "{" + ",".join(map(str, values)) + "}"


async def add_rows(conn: Conn, rows: Sequence[tuple[Row, Vector]]) -> None:
    """Add deltas to aggregate rows (rows must come sorted by key)."""
    if not rows:
        return
    await conn.execute(
        """INSERT INTO rollup.monthly AS a (node, month, shard, v)
        SELECT n, m, s, v::numeric[]
        FROM json_to_recordset($1::json) AS t(n text, m date, s int, v text)
        ON CONFLICT (node, month, shard) DO UPDATE SET v = rollup.vadd(a.v, EXCLUDED.v)""",
        [{"n": r[0][0], "m": r[0][1], "s": r[0][2], "v": vector_literal(r[1])} for r in rows],
    )


async def read_positions(pool: asyncpg.Pool, topic: str) -> dict[int, tuple[int, str]]:
    """The last record applied per partition: offset and message key."""
    rows = await pool.fetch(
        'SELECT partition, "offset", message_key FROM rollup.offsets WHERE topic = $1', topic
    )
    return {r["partition"]: (r["offset"], r["message_key"]) for r in rows}


async def fence(conn: Conn, topic: str, expected: Mapping[int, int]) -> list[int]:
    """Lock the position rows of these partitions; the partitions whose stored offset is not
    the one expected (another replica applied past it), empty when all is as expected."""
    parts = sorted(expected)
    await conn.execute(
        """INSERT INTO rollup.offsets (topic, partition, "offset", message_key)
        SELECT $1, p, -1, '' FROM unnest($2::int[]) AS p ON CONFLICT DO NOTHING""",
        topic,
        parts,
    )
    rows = await conn.fetch(
        'SELECT partition, "offset" FROM rollup.offsets WHERE topic = $1'
        " AND partition = ANY($2::int[]) ORDER BY partition FOR UPDATE",
        topic,
        parts,
    )
    return [r["partition"] for r in rows if r["offset"] != expected[r["partition"]]]


async def save_positions(conn: Conn, topic: str, positions: Mapping[int, tuple[int, str]]) -> None:
    """Record the last record applied per partition."""
    parts = sorted(positions)
    await conn.execute(
        """UPDATE rollup.offsets o SET "offset" = s.o, message_key = s.k, updated_at = $5
        FROM unnest($2::int[], $3::bigint[], $4::text[]) AS s(p, o, k)
        WHERE o.topic = $1 AND o.partition = s.p""",
        topic,
        parts,
        [positions[p][0] for p in parts],
        [positions[p][1] for p in parts],
        dt.datetime.now(dt.UTC),
    )
