"""Unit records kept across intake batches until the registry changes.

Checking a batch needs the records of its units (and, for a scoped caller, every ancestor
they ever had). Loading them from PostgreSQL for every batch cost more than validating the
events, and the registry changes rarely next to the events that name it, so records are
kept in memory. Every registry write bumps `reporting.registry_version` in its own
transaction; a batch reads that version first (one cheap query) and, when it moved, the
cache starts afresh. Records loaded while the version moved are used for their batch but
not kept, so a stale record is never filed under a newer version.

The cache holds at most `max_units` records (0: none); past that the oldest are dropped
until half remain.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from huibao_reporting.adapters import registry_repo
from huibao_reporting.adapters.storage import storage_errors
from huibao_reporting.domain.registry import RegistryView, UnitRecord


class RegistryCache:
    """Loads registry views for the intake, from memory when the registry has not changed
    (the `UnitRecords` port)."""

    def __init__(self, pool: asyncpg.Pool, max_units: int = 200_000) -> None:
        self._pool = pool
        self._max = max_units
        self._records: dict[str, UnitRecord] = {}
        self._version: int | None = None
        self.loads = 0
        """Round trips that loaded records (for tests and the benchmark)."""

    async def view(self, ids: Iterable[str], *, ancestors: bool) -> RegistryView:
        """The records of `ids` and, with `ancestors`, of every ancestor they ever had."""
        async with storage_errors():
            return await self._view(ids, ancestors=ancestors)

    async def _view(self, ids: Iterable[str], *, ancestors: bool) -> RegistryView:
        conn = self._pool
        version = await registry_repo.version(conn)
        if version != self._version:
            self._records.clear()
            self._version = version
        found: dict[str, UnitRecord] = {}
        missing: set[str] = set()
        todo = list(set(ids))
        while todo:
            unit = todo.pop()
            if unit in found or unit in missing:
                continue
            record = self._records.get(unit)
            if record is None:
                missing.add(unit)
                continue
            found[unit] = record
            if ancestors:
                todo.extend(p.parent for p in record.placements if p.parent is not None)
        if missing:
            self.loads += 1
            loaded = await registry_repo.load_view(conn, missing, ancestors=ancestors)
            found.update(loaded.records)
            if self._version == version:  # nothing newer was seen meanwhile: keep them
                self._keep(loaded.records.values())
        return RegistryView(found.values())

    def _keep(self, records: Iterable[UnitRecord]) -> None:
        if self._max <= 0:
            return
        for r in records:
            self._records[r.id] = r
        if len(self._records) > self._max:
            for unit in list(self._records)[: len(self._records) - self._max // 2]:
                del self._records[unit]
