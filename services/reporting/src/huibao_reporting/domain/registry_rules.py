"""Rules of a bulk import into the registry: unknown parents, cycles, level order, scope.

`plan_import` checks a whole request against the stored registry and answers either the
field errors (paths like `[3].parent`) or the plan: every unit, parents before children,
with its kind (created, updated, unchanged) and its path root → unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from huibao_contracts.orgunits import Level, OrgUnit
from huibao_contracts.rejects import FieldError, Reason
from huibao_reporting.domain.registry import PathError, RegistryView, UnitRecord, record_of


class ImportKind(StrEnum):
    """What an import does to one unit."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class PlannedUnit:
    """One unit of an import plan."""

    unit: OrgUnit
    kind: ImportKind
    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ImportPlan:
    """The outcome of a valid import, parents first."""

    units: tuple[PlannedUnit, ...]

    def count(self, kind: ImportKind) -> int:
        """How many units the import handles with `kind`."""
        return sum(1 for u in self.units if u.kind is kind)


def err(field: str, reason: Reason, message: str) -> FieldError:
    """A field error."""
    return FieldError(field=field, reason=reason, message=message)


def check_level(unit: OrgUnit, parent: OrgUnit | None, field: str) -> FieldError | None:
    """A root must be a city; a child's level must lie below its parent's."""
    if parent is None:
        if unit.level is not Level.CITY:
            return err(field, Reason.WRONG_LEVEL, f"only a city may be a root, not a {unit.level}")
        return None
    if parent.level.rank >= unit.level.rank:
        return err(
            field,
            Reason.WRONG_LEVEL,
            f"a {unit.level} cannot be placed under a {parent.level} ({parent.id})",
        )
    return None


def plan_import(
    incoming: Sequence[OrgUnit], stored: RegistryView, scope: str | None = None
) -> ImportPlan | list[FieldError]:
    """Validate an import against the stored registry (which must hold every stored
    ancestor of the incoming units and of their new parents) and plan it.

    Parents may come in the same request, in any order. `scope` is the unit a token is
    bound to (None for admin): every unit must lie inside it before and after the import;
    violations come back with reason `out_of_scope`. Every error of the request is reported.
    """
    index, errors = _identity_errors(incoming, stored)
    merged = stored.with_records(_merge_record(u, stored.get(u.id)) for u in incoming)
    paths: dict[str, tuple[str, ...]] = {}
    for i, u in enumerate(incoming):
        path, unit_errors = _tree_errors(i, u, merged)
        errors += unit_errors
        if path is None:
            continue
        paths[u.id] = path
        if scope is not None and (
            scope not in path or (u.id in stored and not stored.within(u.id, scope))
        ):
            errors.append(
                err(f"[{i}].id", Reason.OUT_OF_SCOPE, f"{u.id} lies outside the subtree of {scope}")
            )
    if errors:
        return errors
    ordered = sorted(incoming, key=lambda u: (len(paths[u.id]), index[u.id]))
    planned = []
    for u in ordered:
        old = stored.get(u.id)
        kind = (
            ImportKind.CREATED
            if old is None
            else ImportKind.UNCHANGED
            if old.unit == u
            else ImportKind.UPDATED
        )
        planned.append(PlannedUnit(u, kind, paths[u.id]))
    return ImportPlan(tuple(planned))


def _identity_errors(
    incoming: Sequence[OrgUnit], stored: RegistryView
) -> tuple[dict[str, int], list[FieldError]]:
    """Ids given twice, and changes an import may not make to a stored unit."""
    errors: list[FieldError] = []
    index: dict[str, int] = {}
    for i, u in enumerate(incoming):
        if u.id in index:
            errors.append(
                err(
                    f"[{i}].id",
                    Reason.INVALID_FIELD,
                    f"{u.id} appears twice (also at [{index[u.id]}])",
                )
            )
            continue
        index[u.id] = i
        old = stored.get(u.id)
        if old is None:
            continue
        if old.unit.level is not u.level:
            errors.append(
                err(
                    f"[{i}].level",
                    Reason.INVALID_FIELD,
                    f"the level of {u.id} is {old.unit.level} and cannot change",
                )
            )
        if old.has_dated_moves and old.unit.parent != u.parent:
            errors.append(
                err(
                    f"[{i}].parent",
                    Reason.INVALID_FIELD,
                    f"{u.id} was moved with an effective date; change its parent with "
                    f"POST /v1/orgunits/{u.id}/move",
                )
            )
    return index, errors


def _tree_errors(
    i: int, u: OrgUnit, merged: RegistryView
) -> tuple[tuple[str, ...] | None, list[FieldError]]:
    """The unit's path in the merged tree, or why it has none; and its level errors."""
    parent = merged.get(u.parent) if u.parent else None
    if u.parent is not None and parent is None:
        return None, [err(f"[{i}].parent", Reason.UNKNOWN_UNIT, f"unknown parent {u.parent}")]
    errors = []
    if level_error := check_level(u, parent.unit if parent else None, f"[{i}].level"):
        errors.append(level_error)
    try:
        return merged.path_on(u.id), errors
    except PathError as e:
        return None, [*errors, err(f"[{i}].parent", Reason.INVALID_FIELD, str(e))]


def _merge_record(unit: OrgUnit, old: UnitRecord | None) -> UnitRecord:
    if old is None or not old.has_dated_moves:
        return record_of(unit)
    return UnitRecord(unit, old.placements)
