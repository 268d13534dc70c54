"""Per-unit effects issued before their step commits: feedback reports and notifications.

The steps that reach every unit (every branch's reminder, the quarterly feedback) write
their effects in chunks while they walk the tree. Each chunk is one transaction that
records the units not recorded yet, keyed by unit, and enqueues exactly their outbox rows:
a report (keyed (quarter, unit) in `scheduler.feedback`) or a notification (keyed (step,
unit) in `scheduler.notified`) is stored and published once even when a replica dies
half-way and another one resumes the step. Once the step has committed (`CycleStore`
counts its notifications then), its keys in `scheduler.notified` are forgotten.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import cast

import asyncpg
import orjson

from huibao_platform import outbox
from huibao_platform.outbox import OutboxRecord
from huibao_scheduler.adapters.store import SCHEMA
from huibao_scheduler.domain.plan import PlannedStep
from huibao_scheduler.errors import StoreUnavailableError
from huibao_scheduler.service_layer.ports import IssuedFeedback

_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


class IssuedStore:
    """The `IssuedEffects` port on PostgreSQL: writes chunks of a step's per-unit effects,
    each unit at most once."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def notifications(
        self, step: PlannedStep, rows: Sequence[tuple[str, OutboxRecord]]
    ) -> int:
        """Enqueue the notifications of `rows` (addressee, record) not issued yet by `step`.

        Answers how many were new. Safe to repeat and to run after another replica's
        partial run of the step: nobody is notified twice by one step.
        """
        if not rows:
            return 0
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                found = await conn.fetch(
                    "INSERT INTO scheduler.notified (kind, period, step, unit)"
                    " SELECT $1, $2, $3, unnest($4::text[]) ON CONFLICT DO NOTHING RETURNING unit",
                    step.kind.value,
                    str(step.period),
                    step.step.value,
                    [unit for unit, _ in rows],
                )
                fresh = {r["unit"] for r in found}
                records = []
                for unit, record in rows:
                    if unit in fresh:
                        fresh.discard(unit)  # one notification per addressee, even if repeated
                        records.append(record)
                await outbox.enqueue(cast(asyncpg.Connection, conn), SCHEMA, records)
        except _DB_ERRORS as e:
            raise StoreUnavailableError(
                f"cannot issue the notifications of {step.key}:{step.step}: {e}"
            ) from e
        return len(records)

    async def feedback(self, quarter: str, rows: Sequence[IssuedFeedback]) -> int:
        """Store and enqueue the reports of `rows` not stored yet, in one transaction.

        Answers how many were new. Safe to repeat and to run after another replica's
        partial round: the (quarter, unit) key decides, in the same transaction as the
        outbox rows, so a report is never stored or published twice.
        """
        if not rows:
            return 0
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                found = await conn.fetch(
                    "SELECT unit FROM scheduler.feedback WHERE quarter = $1"
                    " AND unit = ANY($2::text[])",
                    quarter,
                    [r.unit for r in rows],
                )
                stored = {r["unit"] for r in found}
                fresh = [r for r in rows if r.unit not in stored]
                await conn.copy_records_to_table(
                    "feedback",
                    schema_name=SCHEMA,
                    columns=["quarter", "unit", "parent", "level", "path", "report", "issued_at"],
                    records=[
                        (
                            quarter,
                            r.unit,
                            r.parent,
                            r.level,
                            list(r.path),
                            orjson.Fragment(r.report_json),
                            r.issued_at,
                        )
                        for r in fresh
                    ],
                )
                await outbox.enqueue(
                    cast(asyncpg.Connection, conn), SCHEMA, [r.record for r in fresh]
                )
        except _DB_ERRORS as e:
            raise StoreUnavailableError(f"cannot store the feedback of {quarter}: {e}") from e
        return len(fresh)

    async def forget(self) -> None:
        """Delete the notification keys of committed steps (best effort: the next commit
        retries). A committed step never runs again, so they are no longer needed."""
        with contextlib.suppress(*_DB_ERRORS):
            await self._pool.execute(
                "DELETE FROM scheduler.notified n USING scheduler.steps s"
                " WHERE n.kind = s.kind AND n.period = s.period AND n.step = s.step"
            )
