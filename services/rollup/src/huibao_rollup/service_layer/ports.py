"""What the use cases need from outside, as protocols the adapters satisfy.

`adapters.postgres.Repository` is the one implementation of `Storage`, `QueryReads` and
`PositionStore`, its `UnitOfWork` the one of `UnitOfWork`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from typing import Protocol

from huibao_contracts.periods import Period
from huibao_rollup.domain.aggregation import Row, Vector
from huibao_rollup.domain.completeness import Held
from huibao_rollup.domain.model import Fact
from huibao_rollup.domain.unit_version import UnitVersion

Positions = Mapping[int, tuple[int, str]]
"""Partition → (offset, message key) of the last record applied."""
Sums = dict[tuple[str, str], dict[str, Decimal]]
"""(node, period) → metric → sum, as the aggregates hold them."""


class PositionStore(Protocol):
    """Reads the last record applied per partition."""

    async def read_positions(self, topic: str) -> dict[int, tuple[int, str]]:
        """Partition → (offset, message key) of the last record applied."""
        ...


class UnitOfWork(Protocol):
    """One transaction: everything written through it commits or rolls back together."""

    async def fence(self, topic: str, expected: Mapping[int, int]) -> list[int]:
        """Lock the position rows; the partitions another replica moved past `expected`."""
        ...

    async def lock_facts(self, activity_ids: Sequence[str]) -> dict[str, Fact]:
        """Stored facts of these activities, locked."""
        ...

    async def lock_facts_through(self, unit: str, since: dt.date) -> list[Fact]:
        """Facts counted through `unit` dated on or after `since`, locked."""
        ...

    async def write_facts(self, new: Sequence[Fact], replaced: Sequence[Fact]) -> None:
        """Facts of new activities, and new revisions of stored (locked) ones."""
        ...

    async def add_rows(self, rows: Sequence[tuple[Row, Vector]]) -> None:
        """Aggregate deltas, rows sorted by key."""
        ...

    async def save_positions(self, topic: str, positions: Positions) -> None:
        """The last record applied per partition."""
        ...

    async def upsert_versions(self, versions: Sequence[UnitVersion]) -> None:
        """Tree versions."""
        ...


class Storage(Protocol):
    """Where the apply use case keeps facts, aggregates, positions and the tree."""

    def unit_of_work(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """A transaction (StorageUnavailableError when PostgreSQL is away)."""
        ...

    async def load_versions(self) -> list[UnitVersion]:
        """Every stored tree version."""
        ...


class QueryReads(Protocol):
    """What the query use cases read from the aggregates and facts."""

    async def sums(self, nodes: Sequence[str], periods: Sequence[Period]) -> Sums:
        """Aggregates of these nodes and periods, summed over shards and months."""
        ...

    async def party_days(self, node: str, first: dt.date, last: dt.date) -> list[Held]:
        """Party Day reports counted under `node` dated in [first, last]."""
        ...
