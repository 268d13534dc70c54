"""The rollup's PostgreSQL repository: one pool, units of work, driver errors translated."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from huibao_contracts.periods import Period
from huibao_platform import auth
from huibao_platform.db import apply_schema, create_pool, run_ddl
from huibao_platform.errors import StorageUnavailableError
from huibao_rollup.adapters import pg_read, pg_tree, pg_write
from huibao_rollup.adapters.pg_write import Conn
from huibao_rollup.domain.aggregation import Row, Vector
from huibao_rollup.domain.completeness import Held
from huibao_rollup.domain.model import Fact
from huibao_rollup.domain.tree import UnitVersion

SCHEMA = Path(__file__).resolve().parent.parent / "schema.sql"
DRIVER_ERRORS = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # a connection PostgreSQL just ended (platform db.py)
    TimeoutError,
)


class UnitOfWork:
    """One transaction: everything written through it commits or rolls back together."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def fence(self, topic: str, expected: Mapping[int, int]) -> list[int]:
        """Lock position rows; the partitions another replica moved (see pg_write.fence)."""
        return await pg_write.fence(self.conn, topic, expected)

    async def lock_facts(self, activity_ids: Sequence[str]) -> dict[str, Fact]:
        """Stored facts of these activities, locked."""
        return await pg_write.lock_facts(self.conn, activity_ids)

    async def lock_facts_through(self, unit: str, since: dt.date) -> list[Fact]:
        """Facts counted through `unit` dated on or after `since`, locked."""
        return await pg_tree.lock_facts_through(self.conn, unit, since)

    async def write_facts(self, new: Sequence[Fact], replaced: Sequence[Fact]) -> None:
        """Facts of new activities, and new revisions of stored (locked) ones."""
        await pg_write.insert_facts(self.conn, new)
        await pg_write.update_facts(self.conn, replaced)

    async def add_rows(self, rows: Sequence[tuple[Row, Vector]]) -> None:
        """Aggregate deltas, rows sorted by key."""
        await pg_write.add_rows(self.conn, rows)

    async def move(
        self, rows: Sequence[tuple[Row, Vector]], moved: Mapping[str, tuple[str, ...]]
    ) -> None:
        """Aggregate deltas of re-attributed facts, and their new paths."""
        await pg_write.add_rows(self.conn, rows)
        await pg_write.update_paths(self.conn, moved)

    async def save_positions(self, topic: str, positions: Mapping[int, tuple[int, str]]) -> None:
        """The last record applied per partition."""
        await pg_write.save_positions(self.conn, topic, positions)

    async def upsert_versions(self, versions: Sequence[UnitVersion]) -> None:
        """Tree versions."""
        await pg_tree.upsert_versions(self.conn, versions)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The read pool's reset: nothing. Its connections only run single SELECTs, which
    leave no session state behind, so the default reset (one more round trip per query:
    `RESET ALL`, `UNLISTEN *`, ...) is skipped."""


class Repository:
    """Everything the rollup keeps in PostgreSQL.

    Reads of the API (`sums`, `party_days`) go through a second, small pool whose
    connections are not reset between uses (see `_keep_session`); `data_version` uses the
    main pool, so that it never queues behind the API's reads."""

    def __init__(self, pool: asyncpg.Pool | None = None) -> None:
        self._pool = pool
        self._reads: asyncpg.Pool | None = None

    @property
    def reads(self) -> asyncpg.Pool:
        """The pool of the query API's reads (the main pool until `connect`)."""
        return self._reads or self.pool

    @property
    def pool(self) -> asyncpg.Pool:
        """The connection pool (set by `connect`)."""
        if self._pool is None:
            raise StorageUnavailableError("the rollup is not connected to PostgreSQL yet")
        return self._pool

    async def connect(self, url: str, size: int, *, within: float | None = None) -> None:
        """Open the pool (retrying while PostgreSQL starts, at most `within` seconds) and
        set up the schema."""
        self._pool = await create_pool(url, min_size=1, max_size=size, within=within)
        await self.setup()
        try:
            self._reads = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=max(2, size // 2),
                reset=_keep_session,
                command_timeout=60,
            )
        except DRIVER_ERRORS as e:
            raise StorageUnavailableError(f"cannot open the read pool: {e}") from e

    async def close(self) -> None:
        """Close the pools."""
        if self._reads is not None:
            await self._reads.close()
            self._reads = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def setup(self) -> None:
        """Create the schema (and the auth table reporting owns, if missing)."""
        try:
            await apply_schema(self.pool, "rollup", SCHEMA)
            await run_ddl(self.pool, auth.DDL)
        except DRIVER_ERRORS as e:
            raise StorageUnavailableError(f"cannot set up the rollup schema: {e}") from e

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """A transaction; driver errors become StorageUnavailableError."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                yield UnitOfWork(conn)
        except DRIVER_ERRORS as e:
            raise StorageUnavailableError(str(e)) from e

    async def read_positions(self, topic: str) -> dict[int, tuple[int, str]]:
        """Partition → (offset, message key) of the last record applied."""
        try:
            return await pg_write.read_positions(self.pool, topic)
        except DRIVER_ERRORS as e:
            raise StorageUnavailableError(str(e)) from e

    async def load_versions(self) -> list[UnitVersion]:
        """Every stored tree version."""
        try:
            return await pg_tree.load_versions(self.pool)
        except DRIVER_ERRORS as e:
            raise StorageUnavailableError(str(e)) from e

    async def sums(self, nodes: Sequence[str], periods: Sequence[Period]) -> pg_read.Sums:
        """Aggregates of these nodes and periods, summed over shards and months."""
        try:
            return await pg_read.sums(self.reads, nodes, periods)
        except DRIVER_ERRORS as e:
            raise StorageUnavailableError(str(e)) from e

    async def data_version(self) -> tuple[int, int, object]:
        """What moves whenever any replica commits an applied batch: the count, sum and
        newest update time of the positions in `rollup.offsets` (one tiny table)."""
        try:
            row = await self.pool.fetchrow(
                'SELECT count(*) AS n, coalesce(sum("offset"), 0) AS s, max(updated_at) AS t'
                " FROM rollup.offsets"
            )
        except DRIVER_ERRORS as e:
            raise StorageUnavailableError(str(e)) from e
        assert row is not None
        return int(row["n"]), int(row["s"]), row["t"]

    async def party_days(self, node: str, first: dt.date, last: dt.date) -> list[Held]:
        """Party Day reports counted under `node` dated in [first, last]."""
        try:
            return await pg_read.party_days(self.reads, node, first, last)
        except DRIVER_ERRORS as e:
            raise StorageUnavailableError(str(e)) from e
