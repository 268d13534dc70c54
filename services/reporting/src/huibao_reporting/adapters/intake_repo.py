"""Intake storage: lock, read what a batch needs, write events, activities and outbox rows.

Everything for one batch runs in one transaction: `lock` serialises writers touching the
same units, activities or messages (hashed into a fixed set of advisory locks, so a batch
never takes more than `LOCK_BUCKETS` locks); `load_state` reads what `decide` needs; `store`
writes the accepted events and every outbox record with set-based statements.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from huibao_contracts.activities import PARTY_DAY_TYPE
from huibao_platform.outbox import OutboxRecord, enqueue
from huibao_reporting.adapters.storage import Conn, Executor
from huibao_reporting.domain.decisions import IntakeState, StoredActivity
from huibao_reporting.domain.events import ParsedEvent

SCHEMA = "reporting"
LOCK_BUCKETS = 256
_LOCK_BASE = 0x4855_4942_0000_0000  # "HUIB" in the high bytes keeps clear of other locks


@dataclass(frozen=True, slots=True)
class AcceptedEvent:
    """An accepted event with the instant it was stored and what is published for it."""

    event: ParsedEvent
    received: dt.datetime


def _bucket(text: str) -> int:
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return _LOCK_BASE + int.from_bytes(digest, "big") % LOCK_BUCKETS


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
        " JOIN unnest($1::text[], $2::text[]) AS k(source, id) USING (source, id)",
        [e.envelope.source for e in events],
        [e.envelope.id for e in events],
    )
    state.seen = {(r["source"], r["id"]) for r in rows}
    rows = await conn.fetch(
        "SELECT activity_id, type, unit, revision, month, retracted FROM reporting.activities"
        " WHERE activity_id = ANY($1::text[])",
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
            " JOIN unnest($1::text[], $2::date[]) AS k(unit, month) USING (unit, month)"
            " WHERE a.type = $3 AND NOT a.retracted",
            [s[0] for s in slots],
            [s[1] for s in slots],
            PARTY_DAY_TYPE,
        )
        state.party_days = {(r["unit"], r["month"]): r["activity_id"] for r in rows}
    return state


_INSERT_SEEN = """
INSERT INTO reporting.events_seen (source, id, activity_id, channel, received_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
ON CONFLICT DO NOTHING
"""

_UPSERT_ACTIVITIES = """
INSERT INTO reporting.activities (activity_id, type, unit, revision, date, month, retracted,
    source, event_id, time, received_at, first_received_at, data)
SELECT a, t, u, r, d, m, x, s, i, tm, rc, rc, dt FROM unnest($1::text[], $2::text[], $3::text[],
    $4::int[], $5::date[], $6::date[], $7::bool[], $8::text[], $9::text[], $10::timestamptz[],
    $11::timestamptz[], $12::jsonb[]) AS v(a, t, u, r, d, m, x, s, i, tm, rc, dt)
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
            [a.event.envelope.source for a in accepted],
            [a.event.envelope.id for a in accepted],
            [a.event.payload.activity_id for a in accepted],
            [channel] * len(accepted),
            [a.received for a in accepted],
        )
        latest: dict[str, AcceptedEvent] = {}
        for a in accepted:
            latest[a.event.payload.activity_id] = a
        rows = list(latest.values())
        await conn.execute(
            _UPSERT_ACTIVITIES,
            [a.event.payload.activity_id for a in rows],
            [a.event.envelope.type for a in rows],
            [a.event.subject for a in rows],
            [a.event.payload.revision for a in rows],
            [a.event.payload.date for a in rows],
            [a.event.month for a in rows],
            [a.event.payload.retracted for a in rows],
            [a.event.envelope.source for a in rows],
            [a.event.envelope.id for a in rows],
            [a.event.envelope.time for a in rows],
            [a.received for a in rows],
            [a.event.payload.model_dump(mode="json") for a in rows],
        )
    await enqueue(conn, SCHEMA, records)
