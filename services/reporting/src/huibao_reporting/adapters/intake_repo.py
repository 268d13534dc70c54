"""Intake storage: lock, read what a batch needs, write events, activities and outbox rows.

Everything for one batch runs in one transaction: `lock` serialises writers touching the
same units, activities or messages (hashed into a fixed set of advisory locks, so a batch
never takes more than `LOCK_BUCKETS` locks); `load_state` reads what `decide` needs; `store`
writes the accepted events and every outbox record with set-based statements.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from huibao_contracts.activities import PARTY_DAY_TYPE
from huibao_platform.errors import UnstorableValueError
from huibao_platform.outbox import OutboxRecord, enqueue
from huibao_reporting.adapters.storage import Conn, Executor, storage_errors
from huibao_reporting.domain.decisions import IntakeState, StoredActivity
from huibao_reporting.domain.events import ParsedEvent
from huibao_reporting.service_layer.ports import AcceptedEvent

SCHEMA = "reporting"
LOCK_BUCKETS = 256
_LOCK_BASE = 0x4855_4942_0000_0000  # "HUIB" in the high bytes keeps clear of other locks


def _bucket(text: str) -> int:
    return _LOCK_BASE + zlib.crc32(text.encode()) % LOCK_BUCKETS


async def lock(conn: Conn, events: Sequence[ParsedEvent]) -> None:
    """Take the transaction's advisory locks for the units, activities and messages."""
    keys: set[int] = set()
    for e in events:
        keys.add(_bucket("u:" + e.subject))
        keys.add(_bucket("a:" + e.payload.activity_id))
        keys.add(_bucket(f"m:{e.envelope.source}\x00{e.envelope.id}"))
    if keys:
        await conn.execute(
            "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k", sorted(keys)
        )


async def load_state(conn: Executor, events: Sequence[ParsedEvent]) -> IntakeState:
    """Seen messages, stored activities and Party Day slots for the batch."""
    state = IntakeState()
    if not events:
        return state
    rows = await conn.fetch(
        "SELECT s.source, s.id FROM reporting.events_seen s"
        " JOIN json_to_recordset($1::json) AS k(source text, id text) USING (source, id)",
        [{"source": e.envelope.source, "id": e.envelope.id} for e in events],
    )
    state.seen = {(r["source"], r["id"]) for r in rows}
    rows = await conn.fetch(
        "SELECT activity_id, type, unit, revision, month, retracted FROM reporting.activities"
        " WHERE activity_id IN (SELECT json_array_elements_text($1::json))",
        list({e.payload.activity_id for e in events}),
    )
    state.activities = {
        r["activity_id"]: StoredActivity(
            r["activity_id"], r["type"], r["unit"], r["revision"], r["month"], r["retracted"]
        )
        for r in rows
    }
    slots = {(e.subject, e.month) for e in events if e.envelope.type == PARTY_DAY_TYPE}
    if slots:
        rows = await conn.fetch(
            "SELECT a.unit, a.month, a.activity_id FROM reporting.activities a"
            " JOIN json_to_recordset($1::json) AS k(unit text, month date) USING (unit, month)"
            " WHERE a.type = $2 AND NOT a.retracted",
            [{"unit": unit, "month": month} for unit, month in slots],
            PARTY_DAY_TYPE,
        )
        state.party_days = {(r["unit"], r["month"]): r["activity_id"] for r in rows}
    return state


# Batches travel as one JSON document per statement (json_to_recordset) rather than one
# array per column: asyncpg checks every element of an array parameter in Python, which
# cost more than the rest of the statement.
_INSERT_SEEN = """
INSERT INTO reporting.events_seen (source, id, activity_id, channel, received_at)
SELECT source, id, activity_id, $2, received_at FROM json_to_recordset($1::json)
    AS v(source text, id text, activity_id text, received_at timestamptz)
ON CONFLICT DO NOTHING
"""

_UPSERT_ACTIVITIES = """
INSERT INTO reporting.activities (activity_id, type, unit, revision, date, month, retracted,
    source, event_id, time, received_at, first_received_at, data)
SELECT activity_id, type, unit, revision, date, month, retracted, source, event_id, time,
    received_at, received_at, data
FROM json_to_recordset($1::json) AS v(activity_id text, type text, unit text, revision int,
    date date, month date, retracted bool, source text, event_id text, time timestamptz,
    received_at timestamptz, data jsonb)
ON CONFLICT (activity_id) DO UPDATE SET revision = EXCLUDED.revision, date = EXCLUDED.date,
    month = EXCLUDED.month, retracted = EXCLUDED.retracted, source = EXCLUDED.source,
    event_id = EXCLUDED.event_id, time = EXCLUDED.time, received_at = EXCLUDED.received_at,
    data = EXCLUDED.data
WHERE reporting.activities.revision < EXCLUDED.revision
"""


async def store(
    conn: Conn,
    accepted: Sequence[AcceptedEvent],
    channel: str,
    records: Sequence[OutboxRecord],
) -> None:
    """Write the accepted events and the outbox records (inside the caller's transaction)."""
    if accepted:
        await conn.execute(
            _INSERT_SEEN,
            [
                {
                    "source": a.event.envelope.source,
                    "id": a.event.envelope.id,
                    "activity_id": a.event.payload.activity_id,
                    "received_at": a.received,
                }
                for a in accepted
            ],
            channel,
        )
        latest: dict[str, AcceptedEvent] = {}
        for a in accepted:
            latest[a.event.payload.activity_id] = a
        await conn.execute(_UPSERT_ACTIVITIES, [_activity_row(a) for a in latest.values()])
    await enqueue(conn, SCHEMA, records)


def _activity_row(a: AcceptedEvent) -> dict[str, Any]:
    e, p = a.event, a.event.payload
    return {
        "activity_id": p.activity_id,
        "type": e.envelope.type,
        "unit": e.subject,
        "revision": p.revision,
        "date": p.date,
        "month": e.month,
        "retracted": p.retracted,
        "source": e.envelope.source,
        "event_id": e.envelope.id,
        "time": e.envelope.time,
        "received_at": a.received,
        "data": a.data,
    }


class PgBatch:
    """One intake transaction on a connection (the `IntakeBatch` port)."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    async def lock(self, events: Sequence[ParsedEvent]) -> None:
        """Take the transaction's advisory locks for the batch."""
        await lock(self._conn, events)

    async def load_state(self, events: Sequence[ParsedEvent]) -> IntakeState:
        """What `decide` needs for the batch."""
        return await load_state(self._conn, events)

    async def store(
        self, accepted: Sequence[AcceptedEvent], channel: str, records: Sequence[OutboxRecord]
    ) -> None:
        """Write the accepted events and the outbox records."""
        await store(self._conn, accepted, channel, records)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A savepoint; a value PostgreSQL refuses in it is UnstorableValueError with
        PostgreSQL's own message."""
        try:
            async with self._conn.transaction():
                yield
        except asyncpg.DataError as e:
            raise UnstorableValueError(str(e)) from e


class PgIntakeStore:
    """The intake's PostgreSQL storage (the `IntakeStore` port); driver errors leave it
    as StorageUnavailableError or UnstorableValueError."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def batch(self, *, commit: bool) -> AsyncIterator[PgBatch]:
        """A transaction, committed at a clean end when `commit`, else rolled back."""
        async with storage_errors(), self._pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            try:
                yield PgBatch(conn)
            except BaseException:
                await transaction.rollback()
                raise
            if commit:
                await transaction.commit()
            else:
                await transaction.rollback()
