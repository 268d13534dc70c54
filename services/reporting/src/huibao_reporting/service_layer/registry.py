"""Registry use cases: bulk import, read, move, merge and close, scoped to a token's unit.

Writers are serialised by a transaction-level advisory lock, read the stored registry
inside their transaction, and store the changes with their outbox records in the same one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

from huibao_contracts.orgunits import OrgUnit, OrgUnitChange
from huibao_contracts.rejects import FieldError, Reason
from huibao_reporting.adapters import registry_repo
from huibao_reporting.adapters.storage import storage_errors
from huibao_reporting.domain.registry import PathError, RegistryView, UnitRecord, record_of
from huibao_reporting.domain.registry_changes import Change, plan_close, plan_merge, plan_move
from huibao_reporting.domain.registry_rules import ImportKind, ImportPlan, plan_import


class RegistryRefusedError(Exception):
    """A registry request was refused; `errors` say why, `status` is the HTTP status."""

    def __init__(self, errors: Sequence[FieldError], status: int = 422) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = list(errors)
        self.status = status


@dataclass(frozen=True, slots=True)
class UnitView:
    """A unit as GET /v1/orgunits/{id} shows it."""

    record: UnitRecord
    path: tuple[str, ...]
    children: list[str]


def _refuse(errors: Sequence[FieldError]) -> RegistryRefusedError:
    forbidden = any(e.reason is Reason.OUT_OF_SCOPE for e in errors)
    unknown = [e for e in errors if e.field == "id" and e.reason is Reason.UNKNOWN_UNIT]
    status = 403 if forbidden else 404 if unknown else 422
    return RegistryRefusedError(errors, status)


class Registry:
    """The org-unit registry."""

    def __init__(self, pool: asyncpg.Pool, on_commit: Callable[[], None] = lambda: None) -> None:
        self._pool = pool
        self._on_commit = on_commit

    async def import_units(self, units: Sequence[OrgUnit], scope: str | None) -> ImportPlan:
        """Create or update `units`; publish one change per created or updated unit."""
        ids = {u.id for u in units}
        parents = {u.parent for u in units if u.parent}
        async with storage_errors(), self._pool.acquire() as conn, conn.transaction():
            await registry_repo.lock_registry(conn)
            stored = await registry_repo.load_view(conn, ids | parents)
            plan = plan_import(units, stored, scope)
            if not isinstance(plan, ImportPlan):
                raise _refuse(plan)
            changes = []
            for p in plan.units:
                if p.kind is ImportKind.UNCHANGED:
                    continue
                old = stored.get(p.unit.id)
                record = (
                    UnitRecord(p.unit, old.placements)
                    if old and old.has_dated_moves
                    else record_of(p.unit)
                )
                changes.append(Change("upsert", None, record, p.path))
            await registry_repo.store_changes(conn, changes)
        if changes:
            self._on_commit()
        return plan

    async def get(self, unit_id: str, scope: str | None, today: dt.date) -> UnitView:
        """A unit with its current path and children (404/403 as RegistryRefusedError)."""
        async with storage_errors():
            view = await registry_repo.load_view(self._pool, [unit_id])
            record = view.get(unit_id)
            if record is None:
                raise _refuse(
                    [
                        FieldError(
                            field="id",
                            reason=Reason.UNKNOWN_UNIT,
                            message=f"unknown org unit {unit_id}",
                        )
                    ]
                )
            if not view.within(unit_id, scope):
                raise _refuse(
                    [
                        FieldError(
                            field="id",
                            reason=Reason.OUT_OF_SCOPE,
                            message=f"{unit_id} lies outside the subtree of {scope}",
                        )
                    ]
                )
            try:
                path = view.path_on(unit_id)
            except PathError:
                path = (unit_id,)
            children = await registry_repo.children_on(self._pool, unit_id, today)
        return UnitView(record, path, children)

    async def move(
        self, unit_id: str, parent: str, effective: dt.date, scope: str | None
    ) -> list[OrgUnitChange]:
        """Move a unit under another parent from `effective` on."""
        return await self._dated(
            unit_id, [parent], scope, lambda view: plan_move(view, unit_id, parent, effective)
        )

    async def merge(
        self, unit_id: str, into: str, effective: dt.date, scope: str | None
    ) -> list[OrgUnitChange]:
        """Merge a unit into another from `effective` on; its children move there."""
        return await self._dated(
            unit_id, [into], scope, lambda view: plan_merge(view, unit_id, into, effective)
        )

    async def close(
        self, unit_id: str, effective: dt.date, scope: str | None
    ) -> list[OrgUnitChange]:
        """Close a unit from `effective` on."""
        return await self._dated(
            unit_id, [], scope, lambda view: plan_close(view, unit_id, effective)
        )

    async def _dated(
        self,
        unit_id: str,
        others: list[str],
        scope: str | None,
        planner: Callable[[RegistryView], list[Change] | list[FieldError]],
    ) -> list[OrgUnitChange]:
        async with storage_errors(), self._pool.acquire() as conn, conn.transaction():
            await registry_repo.lock_registry(conn)
            view = await registry_repo.load_view(conn, [unit_id, *others], children_of=[unit_id])
            outside = [u for u in [unit_id, *others] if u in view and not view.within(u, scope)]
            if outside:
                raise _refuse(
                    [
                        FieldError(
                            field="id",
                            reason=Reason.OUT_OF_SCOPE,
                            message=f"{', '.join(outside)} outside the subtree of {scope}",
                        )
                    ]
                )
            planned = planner(view)
            if planned and isinstance(planned[0], FieldError):
                raise _refuse([e for e in planned if isinstance(e, FieldError)])
            changes = [c for c in planned if isinstance(c, Change)]
            published = await registry_repo.store_changes(conn, changes)
        if published:
            self._on_commit()
        return published
