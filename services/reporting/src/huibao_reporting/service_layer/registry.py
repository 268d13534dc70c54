"""Registry use cases: bulk import, read, move, merge and close, scoped to a token's unit.

Writers are serialised by a transaction-level advisory lock, read the stored registry
inside their transaction, and store the changes with their outbox records in the same one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from huibao_contracts.orgunits import OrgUnit, OrgUnitChange
from huibao_contracts.rejects import FieldError, Reason
from huibao_reporting.domain.registry import PathError, RegistryView, UnitRecord
from huibao_reporting.domain.registry_changes import (
    Change,
    import_changes,
    plan_close,
    plan_merge,
    plan_move,
)
from huibao_reporting.domain.registry_rules import ImportPlan, plan_import, scope_errors
from huibao_reporting.errors import ReportingError
from huibao_reporting.service_layer.ports import RegistryStore


class RegistryRefusedError(ReportingError):
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

    def __init__(self, store: RegistryStore, on_commit: Callable[[], None] = lambda: None) -> None:
        self._store = store
        self._on_commit = on_commit

    async def import_units(
        self,
        units: Sequence[OrgUnit],
        scope: str | None,
        today: dt.date,
        effectives: Sequence[dt.date | None] = (),
    ) -> ImportPlan:
        """Create or update `units` (row i effective from `effectives[i]`, else `today`);
        publish the changed versions of every created or updated unit."""
        ids = {u.id for u in units}
        parents = {u.parent for u in units if u.parent}
        async with self._store.writing() as conn:
            stored = await conn.load_view(ids | parents)
            plan = plan_import(units, stored, scope, effectives=effectives, today=today)
            if not isinstance(plan, ImportPlan):
                raise _refuse(plan)
            changes = import_changes(plan, stored)
            await conn.store_changes(changes)
        if changes:
            self._on_commit()
        return plan

    async def get(self, unit_id: str, scope: str | None, today: dt.date) -> UnitView:
        """A unit with its current path and children (404/403 as RegistryRefusedError)."""
        view = await self._store.load_view([unit_id])
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
        children = await self._store.children_on(unit_id, today)
        return UnitView(record, path, children)

    async def move(
        self, unit_id: str, parent: str, effective: dt.date, scope: str | None
    ) -> list[OrgUnitChange]:
        """Move a unit under another parent from `effective` on."""
        return await self._dated(
            unit_id,
            [parent],
            scope,
            lambda view: plan_move(view, unit_id, parent, effective),
            effective,
        )

    async def merge(
        self, unit_id: str, into: str, effective: dt.date, scope: str | None
    ) -> list[OrgUnitChange]:
        """Merge a unit into another from `effective` on; its children move there."""
        return await self._dated(
            unit_id,
            [into],
            scope,
            lambda view: plan_merge(view, unit_id, into, effective),
            effective,
        )

    async def close(
        self, unit_id: str, effective: dt.date, scope: str | None
    ) -> list[OrgUnitChange]:
        """Close a unit from `effective` on."""
        return await self._dated(
            unit_id, [], scope, lambda view: plan_close(view, unit_id, effective), effective
        )

    async def _dated(
        self,
        unit_id: str,
        others: list[str],
        scope: str | None,
        planner: Callable[[RegistryView], list[Change] | list[FieldError]],
        effective: dt.date,
    ) -> list[OrgUnitChange]:
        """Plan and store a dated change. The token's unit must lie strictly above the
        unit, before and after the change, on `effective` and on the latest placements,
        and on the path of every other unit named (the new parent, the unit merged into);
        every unit the change moves must lie strictly below it afterwards."""
        async with self._store.writing() as conn:
            view = await conn.load_view([unit_id, *others], children_of=[unit_id])
            refused = [
                e
                for u in [unit_id, *others]
                if u in view
                for e in _scope(u, scope, view, view, effective, strict=u == unit_id)
            ]
            if refused:
                raise _refuse(refused)
            planned = planner(view)
            if planned and isinstance(planned[0], FieldError):
                raise _refuse([e for e in planned if isinstance(e, FieldError)])
            changes = [c for c in planned if isinstance(c, Change)]
            after = view.with_records(c.record for c in changes)
            refused = [
                e
                for c in changes
                for e in _scope(c.record.id, scope, view, after, effective, strict=True)
            ]
            if refused:
                raise _refuse(refused)
            published = await conn.store_changes(changes)
        if published:
            self._on_commit()
        return published


def _scope(
    unit_id: str,
    scope: str | None,
    before: RegistryView,
    after: RegistryView,
    effective: dt.date,
    *,
    strict: bool,
) -> list[FieldError]:
    return [
        FieldError(field="id", reason=e.reason, message=e.message)
        for e in scope_errors("id", unit_id, scope, before, after, [effective], structural=strict)
    ]
