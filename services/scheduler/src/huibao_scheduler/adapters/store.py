"""The PostgreSQL cycle store: cycle states, the step ledger, feedback reports.

`commit_step` is the exactly-once point: in one transaction it locks the cycle row, checks
the cycle is exactly at the step before, claims the step (`INSERT … ON CONFLICT DO NOTHING
RETURNING`), advances the state and writes the outbox rows. Whoever commits first wins; a
replica that dies before committing leaves the step unclaimed for the others.

`lease` keeps replicas from gathering the same step's data side by side: a session advisory
lock per cycle, released when the step ends or when the holder's connection dies.

The per-unit effects are issued before their step commits, in chunks keyed by unit
(`adapters.issued`); `commit_step` adds the notifications issued so to the step's count.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import cast

import asyncpg

from huibao_contracts.cycles import CycleKind, CycleState, CycleTransition
from huibao_contracts.periods import Period
from huibao_platform import auth, outbox
from huibao_platform.db import run_ddl
from huibao_platform.outbox import OutboxRecord
from huibao_scheduler.domain.plan import PlannedStep, Step
from huibao_scheduler.errors import StoreUnavailableError
from huibao_scheduler.service_layer.ports import CycleRow, StoredFeedback

SCHEMA = "scheduler"
_SQL_FILE = Path(__file__).resolve().parent.parent / "schema.sql"
_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)

ClaimHook = Callable[[PlannedStep], Awaitable[None]]
"""Called inside the step transaction, after the claim and before commit (a test seam)."""


async def install_schema(pool: asyncpg.Pool) -> None:
    """Create the scheduler schema, its outbox and the auth tables (idempotent, serialised)."""
    sql = "\n".join(
        [_SQL_FILE.read_text(encoding="utf-8"), outbox.DDL.format(schema=SCHEMA), auth.DDL]
    )
    await run_ddl(pool, sql)


class CycleStore:
    """The `Cycles` port on PostgreSQL: reads and advances cycles in the `scheduler` schema."""

    def __init__(self, pool: asyncpg.Pool, replica: str = "", on_claimed: ClaimHook | None = None):
        self._pool = pool
        self._replica = replica
        self._on_claimed = on_claimed

    async def first_month(self, default: Period) -> Period:
        """The first month ever scheduled: `default` at the first start, then the stored one."""
        try:
            await self._pool.execute(
                "INSERT INTO scheduler.meta (key, value) VALUES ('first_period', $1)"
                " ON CONFLICT DO NOTHING",
                str(default),
            )
            value = await self._pool.fetchval(
                "SELECT value FROM scheduler.meta WHERE key = 'first_period'"
            )
        except _DB_ERRORS as e:
            raise StoreUnavailableError(f"cannot read the first period: {e}") from e
        return Period.parse(str(value))

    async def cycles(self) -> list[CycleRow]:
        """Every cycle that has run at least one step, oldest first."""
        try:
            rows = await self._pool.fetch(
                "SELECT kind, period, state, last_step, updated_at FROM scheduler.cycles"
            )
        except _DB_ERRORS as e:
            raise StoreUnavailableError(f"cannot read cycles: {e}") from e
        out = [
            CycleRow(
                CycleKind(r["kind"]),
                Period.parse(r["period"]),
                CycleState(r["state"]),
                Step(r["last_step"]) if r["last_step"] else None,
                r["updated_at"],
            )
            for r in rows
        ]
        return sorted(out, key=lambda c: (c.kind, c.period))

    @contextlib.asynccontextmanager
    async def lease(self, step: PlannedStep) -> AsyncIterator[bool]:
        """Try to become the one replica working on `step`'s cycle; yields whether it did.

        A session advisory lock on a connection held for the duration: it is released at
        the end, or by PostgreSQL when the holder dies. Exactly-once does not rest on it
        (the claim in `commit_step` does); it saves the others a useless rollup walk.
        """
        key = (1 << 32) | zlib.crc32(f"huibao-scheduler-step/{step.key}".encode())
        try:
            async with self._pool.acquire() as conn:
                held = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", key))
                try:
                    yield held
                finally:
                    if held:
                        with contextlib.suppress(*_DB_ERRORS):
                            await conn.execute("SELECT pg_advisory_unlock($1)", key)
        except _DB_ERRORS as e:
            raise StoreUnavailableError(f"cannot lease step {step.key}: {e}") from e

    async def step_done(self, step: PlannedStep) -> bool:
        """True when `step` has already run (a cheap check before gathering its data)."""
        try:
            found = await self._pool.fetchval(
                "SELECT 1 FROM scheduler.steps WHERE kind = $1 AND period = $2 AND step = $3",
                step.kind.value,
                str(step.period),
                step.step.value,
            )
        except _DB_ERRORS as e:
            raise StoreUnavailableError(f"cannot read steps: {e}") from e
        return found is not None

    async def commit_step(
        self,
        step: PlannedStep,
        previous: Step | None,
        done: CycleTransition,
        *,
        records: Sequence[OutboxRecord],
        notifications: int = 0,
    ) -> bool:
        """Run `step` exactly once: False when another replica ran it (nothing written).

        `notifications` counts the ones in `records`; the ones issued in chunks beforehand
        (`IssuedStore.notifications`) are added to the step's count.
        """
        kind, period = step.kind.value, str(step.period)
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "INSERT INTO scheduler.cycles (kind, period) VALUES ($1, $2)"
                    " ON CONFLICT DO NOTHING",
                    kind,
                    period,
                )
                last = await conn.fetchval(
                    "SELECT last_step FROM scheduler.cycles WHERE kind = $1 AND period = $2"
                    " FOR UPDATE",
                    kind,
                    period,
                )
                if last != (previous.value if previous else None):
                    return False
                notifications += await conn.fetchval(
                    "SELECT count(*) FROM scheduler.notified"
                    " WHERE kind = $1 AND period = $2 AND step = $3",
                    kind,
                    period,
                    step.step.value,
                )
                claimed = await conn.fetchval(
                    "INSERT INTO scheduler.steps (kind, period, step, seq, state, due_at, ran_at,"
                    " skipped, notifications, replica) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"
                    " ON CONFLICT DO NOTHING RETURNING 1",
                    kind,
                    period,
                    step.step.value,
                    step.seq,
                    done.state.value,
                    done.due_at,
                    done.ran_at,
                    done.skipped,
                    notifications,
                    self._replica,
                )
                if claimed is None:
                    return False
                await conn.execute(
                    "UPDATE scheduler.cycles SET state = $3, last_step = $4, updated_at = now()"
                    " WHERE kind = $1 AND period = $2",
                    kind,
                    period,
                    done.state.value,
                    step.step.value,
                )
                await outbox.enqueue(cast(asyncpg.Connection, conn), SCHEMA, records)
                if self._on_claimed is not None:
                    await self._on_claimed(step)
        except _DB_ERRORS as e:
            raise StoreUnavailableError(
                f"cannot record step {kind}:{period}:{step.step}: {e}"
            ) from e
        return True

    async def feedback(self, unit: str, quarter: str) -> StoredFeedback | None:
        """The stored feedback of `unit` for `quarter`, or None."""
        try:
            row = await self._pool.fetchrow(
                "SELECT path, report FROM scheduler.feedback WHERE quarter = $1 AND unit = $2",
                quarter,
                unit,
            )
        except _DB_ERRORS as e:
            raise StoreUnavailableError(f"cannot read feedback: {e}") from e
        return None if row is None else StoredFeedback(tuple(row["path"]), row["report"])
