"""The org-unit registry in PostgreSQL: load views, store imports and dated changes.

Every write also enqueues the `OrgUnitChange`s on `huibao.orgunit.changes` through the
outbox, in the same transaction, parents before children.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager

import asyncpg

from huibao_contracts import topics
from huibao_contracts.orgunits import Level, OrgUnit, OrgUnitChange
from huibao_platform.outbox import OutboxRecord, enqueue
from huibao_reporting.adapters.storage import Conn, Executor, storage_errors
from huibao_reporting.domain.registry import Label, Placement, RegistryView, UnitRecord
from huibao_reporting.domain.registry_changes import Change

SCHEMA = "reporting"
REGISTRY_LOCK = 0x4855_4942_5245_47  # "HUIBREG": serialises registry writers

_SELECT_UNITS = """
SELECT u.id, u.name, u.level, u.parent, u.members, u.opened, u.closed, u.merged_into,
       pl.froms, pl.parents, lb.froms AS label_froms, lb.names, lb.members AS label_members
FROM reporting.orgunits u
JOIN LATERAL (
    SELECT array_agg(p.valid_from ORDER BY p.valid_from) AS froms,
           array_agg(p.parent ORDER BY p.valid_from) AS parents
    FROM reporting.placements p WHERE p.unit = u.id
) pl ON true
JOIN LATERAL (
    SELECT array_agg(l.valid_from ORDER BY l.valid_from) AS froms,
           array_agg(l.name ORDER BY l.valid_from) AS names,
           array_agg(l.members ORDER BY l.valid_from) AS members
    FROM reporting.unit_labels l WHERE l.unit = u.id
) lb ON true
"""

_CLOSURE = (
    """
WITH RECURSIVE seeds(id) AS (
    SELECT unnest($1::text[])
    UNION
    SELECT unit FROM reporting.placements WHERE parent = ANY($2::text[])
), r(id) AS (
    SELECT id FROM seeds
    UNION
    SELECT p.parent FROM reporting.placements p JOIN r ON p.unit = r.id WHERE p.parent IS NOT NULL
)
"""
    + _SELECT_UNITS
    + "WHERE u.id IN (SELECT id FROM r)"
)

_DIRECT = _SELECT_UNITS + "WHERE u.id = ANY($1::text[])"

_UPSERT_UNITS = """
INSERT INTO reporting.orgunits (id, name, level, parent, members, opened, closed, merged_into, seq)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::date[],
                     $7::date[], $8::text[], $9::bigint[])
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, level = EXCLUDED.level,
    parent = EXCLUDED.parent, members = EXCLUDED.members, opened = EXCLUDED.opened,
    closed = EXCLUDED.closed, merged_into = EXCLUDED.merged_into, seq = EXCLUDED.seq,
    updated_at = now()
"""


def _record(row: asyncpg.Record) -> UnitRecord:
    unit = OrgUnit.model_construct(
        id=row["id"],
        name=row["name"],
        level=Level(row["level"]),
        parent=row["parent"],
        members=row["members"],
        opened=row["opened"],
        closed=row["closed"],
    )
    froms, parents = row["froms"] or [], row["parents"] or []
    labels = list(
        zip(row["label_froms"] or [], row["names"] or [], row["label_members"] or [], strict=True)
    )
    return UnitRecord(
        unit,
        tuple(Placement(f, p) for f, p in zip(froms, parents, strict=True)),
        tuple(Label(f, n, m) for f, n, m in labels if n is not None),
        row["merged_into"],
        tuple(f for f, n, _ in labels if n is None),
    )


async def load_view(
    conn: Executor,
    ids: Iterable[str],
    *,
    children_of: Iterable[str] = (),
    ancestors: bool = True,
) -> RegistryView:
    """The stored units `ids` (plus the children of `children_of`) and, unless told
    otherwise, every ancestor they ever had."""
    wanted, kids = sorted(set(ids)), sorted(set(children_of))
    if not ancestors and not kids:
        rows = await conn.fetch(_DIRECT, wanted)
    else:
        rows = await conn.fetch(_CLOSURE, wanted, kids)
    return RegistryView(_record(r) for r in rows)


async def version(conn: Executor) -> int:
    """The registry's version: it grows with every committed registry write."""
    value = await conn.fetchval("SELECT version FROM reporting.registry_version")
    return int(value or 0)


async def lock_registry(conn: Conn) -> None:
    """Serialise registry writers until the end of the caller's transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", REGISTRY_LOCK)


async def _next_seqs(conn: Conn, n: int) -> list[int]:
    values = await conn.fetchval(
        "SELECT array_agg(nextval('reporting.registry_seq')) FROM generate_series(1, $1)", n
    )
    return sorted(values or [])


async def store_changes(conn: Conn, changes: Sequence[Change]) -> list[OrgUnitChange]:
    """Store the units and placements of `changes` and enqueue them, in order."""
    if not changes:
        return []
    seqs = await _next_seqs(conn, len(changes))
    await conn.execute("UPDATE reporting.registry_version SET version = version + 1")
    published = [
        OrgUnitChange(
            seq=seq,
            kind=c.kind,
            effective=c.effective,
            unit=c.published_unit,
            path=c.path,
            merged_into=c.merged_into,
        )
        for seq, c in zip(seqs, changes, strict=True)
    ]
    last = {c.record.id: (c, seq) for seq, c in zip(seqs, changes, strict=True)}
    units = [c.record.unit for c, _ in last.values()]
    await conn.execute(
        _UPSERT_UNITS,
        [u.id for u in units],
        [u.name for u in units],
        [str(u.level) for u in units],
        [u.parent for u in units],
        [u.members for u in units],
        [u.opened for u in units],
        [u.closed for u in units],
        [c.record.merged_into for c, _ in last.values()],
        [seq for _, seq in last.values()],
    )
    ids = list(last)
    await conn.execute("DELETE FROM reporting.placements WHERE unit = ANY($1::text[])", ids)
    placements = [
        (c.record.id, p.valid_from, p.parent) for c, _ in last.values() for p in c.record.placements
    ]
    await conn.copy_records_to_table(
        "placements",
        schema_name=SCHEMA,
        columns=["unit", "valid_from", "parent"],
        records=placements,
    )
    await conn.execute("DELETE FROM reporting.unit_labels WHERE unit = ANY($1::text[])", ids)
    await conn.copy_records_to_table(
        "unit_labels",
        schema_name=SCHEMA,
        columns=["unit", "valid_from", "name", "members"],
        records=[
            *(
                (c.record.id, x.valid_from, x.name, x.members)
                for c, _ in last.values()
                for x in c.record.all_labels
            ),
            *((c.record.id, day, None, None) for c, _ in last.values() for day in c.record.marks),
        ],
    )
    await enqueue(
        conn,
        SCHEMA,
        [
            OutboxRecord(
                topics.ORGUNIT_CHANGES,
                ch.unit.id.encode(),
                ch.model_dump_json().encode(),
                (("content-type", "application/json"),),
            )
            for ch in published
        ],
    )
    return published


async def children_on(conn: Executor, unit_id: str, day: dt.date) -> list[str]:
    """Ids of the units placed under `unit_id` on `day` (used by GET /v1/orgunits/{id})."""
    rows = await conn.fetch(
        """
        SELECT DISTINCT ON (unit) unit, parent FROM reporting.placements
        WHERE unit IN (SELECT unit FROM reporting.placements WHERE parent = $1)
          AND valid_from <= $2
        ORDER BY unit, valid_from DESC
        """,
        unit_id,
        day,
    )
    return sorted(r["unit"] for r in rows if r["parent"] == unit_id)


class PgRegistryWrite:
    """One registry write transaction holding the writer lock (the `RegistryWrite` port)."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    async def load_view(
        self, ids: Iterable[str], *, children_of: Iterable[str] = ()
    ) -> RegistryView:
        """The stored units `ids` (plus the children of `children_of`) with their ancestors."""
        return await load_view(self._conn, ids, children_of=children_of)

    async def store_changes(self, changes: Sequence[Change]) -> list[OrgUnitChange]:
        """Store `changes` and enqueue them, in order."""
        return await store_changes(self._conn, changes)


class PgRegistryStore:
    """The registry in PostgreSQL (the `RegistryStore` port); driver errors leave it as
    StorageUnavailableError or UnstorableValueError."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[PgRegistryWrite]:
        """A transaction serialised against every other registry writer."""
        async with storage_errors(), self._pool.acquire() as conn, conn.transaction():
            await lock_registry(conn)
            yield PgRegistryWrite(conn)

    async def load_view(self, ids: Iterable[str]) -> RegistryView:
        """The stored units `ids` with every ancestor they ever had."""
        async with storage_errors():
            return await load_view(self._pool, ids)

    async def children_on(self, unit_id: str, day: dt.date) -> list[str]:
        """Ids of the units placed under `unit_id` on `day`."""
        async with storage_errors():
            return await children_on(self._pool, unit_id, day)
