"""Rules of a bulk import into the registry: unknown parents, cycles, level order, scope.

`plan_import` checks a whole request against the stored registry and answers either the
field errors (paths like `[3].parent`) or the plan: every unit, parents before children,
with its kind (created, updated, unchanged) and its path root → unit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from huibao_contracts.orgunits import Level, OrgUnit
from huibao_contracts.rejects import FieldError, Reason
from huibao_reporting.domain.registry import (
    SINCE_ALWAYS,
    PathError,
    Placement,
    RegistryView,
    UnitRecord,
    record_of,
)


class ImportKind(StrEnum):
    """What an import does to one unit."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class PlannedUnit:
    """One unit of an import plan: its record after the import and the first day that
    differs from the stored one."""

    unit: OrgUnit
    kind: ImportKind
    path: tuple[str, ...]
    record: UnitRecord
    since: dt.date


@dataclass(frozen=True, slots=True)
class ImportPlan:
    """The outcome of a valid import, parents first, and the registry after it."""

    units: tuple[PlannedUnit, ...]
    after: RegistryView

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
    incoming: Sequence[OrgUnit],
    stored: RegistryView,
    scope: str | None = None,
    *,
    effectives: Sequence[dt.date | None] = (),
    today: dt.date | None = None,
) -> ImportPlan | list[FieldError]:
    """Validate an import against the stored registry (which must hold every stored
    ancestor of the incoming units and of their new parents) and plan it.

    Parents may come in the same request, in any order. `effectives[i]` is the explicit
    `effective` of row i (None: `today`, the day of the import). A stored unit keeps its
    history: a new name or member count holds from the row's effective date on; a new
    parent is a dated move when the row names an effective date, else a correction since
    always (refused for a unit moved with a date: that takes an explicit date); a new
    opening or closing is the unit's own. A created unit exists since always (its
    `opened` says from when it is active).

    `scope` is the unit a token is bound to (None for admin); see `scope_errors`.
    Violations come back with reason `out_of_scope`. Every error of the request is reported.
    """
    day = today or dt.date.today()
    dates = [effectives[i] if i < len(effectives) else None for i in range(len(incoming))]
    index, errors = _identity_errors(incoming, stored, dates)
    records: dict[str, UnitRecord] = {}
    since: dict[str, dt.date] = {}
    for i, u in enumerate(incoming):
        if index.get(u.id) != i:
            continue
        records[u.id], since[u.id] = imported(u, stored.get(u.id), dates[i], day)
    merged = stored.with_records(records.values())
    paths: dict[str, tuple[str, ...]] = {}
    for i, u in enumerate(incoming):
        path, unit_errors = _tree_errors(i, u, merged)
        errors += unit_errors
        if path is None:
            continue
        paths[u.id] = path
        old = stored.get(u.id)
        errors += scope_errors(
            f"[{i}].id",
            u.id,
            scope,
            stored,
            merged,
            [min(since[u.id], day)],
            structural=old is None or structural_change(old, records[u.id]),
        )
    if errors:
        return errors
    ordered = sorted(incoming, key=lambda u: (len(paths[u.id]), index[u.id]))
    planned = []
    for u in ordered:
        old = stored.get(u.id)
        record = records[u.id]
        kind = (
            ImportKind.CREATED
            if old is None
            else ImportKind.UNCHANGED
            if old == record
            else ImportKind.UPDATED
        )
        planned.append(PlannedUnit(u, kind, paths[u.id], record, since[u.id]))
    return ImportPlan(tuple(planned), merged)


def imported(
    u: OrgUnit, old: UnitRecord | None, effective: dt.date | None, today: dt.date
) -> tuple[UnitRecord, dt.date]:
    """The record after importing `u` over `old`, and the first day it differs from
    `old` (`SINCE_ALWAYS` for a new unit, a correction, or a new opening or closing).

    A row is the unit's state from its effective date on: its parent, name and member
    count hold from then (each only when it differs from the one in force then); a row
    equal to the stored latest state changes nothing."""
    if old is None:
        return record_of(u), SINCE_ALWAYS
    if u == old.unit:  # the stored latest state again: nothing new, whatever the date
        return old, dt.date.max
    day = effective or today
    record, since = old, dt.date.max
    if u.parent != old.unit.parent:
        if effective is None:
            record = UnitRecord(
                record.unit.model_copy(update={"parent": u.parent}),
                (Placement(SINCE_ALWAYS, u.parent),),
                record.labels,
                record.merged_into,
                record.marks,
            )
            since = SINCE_ALWAYS
        else:
            record, since = record.placed(day, u.parent), min(since, day)
    label = record.label_on(day)
    if (label.name, label.members) != (u.name, u.members):
        record, since = record.with_label(day, u.name, u.members), min(since, day)
    if (old.unit.opened, old.unit.closed) != (u.opened, u.closed):
        unit = record.unit.model_copy(update={"opened": u.opened, "closed": u.closed})
        into = record.merged_into if u.closed is not None else None  # reopened: not merged
        record = UnitRecord(unit, record.placements, record.labels, into, record.marks)
        since = SINCE_ALWAYS
    return record, since


def structural_change(old: UnitRecord, new: UnitRecord) -> bool:
    """True when the change touches the unit's place or life: its parents, level,
    opening or closing (a name or a member count is not structural)."""
    return (
        old.placements != new.placements
        or old.unit.level is not new.unit.level
        or (old.unit.opened, old.unit.closed) != (new.unit.opened, new.unit.closed)
    )


def scope_errors(
    field: str,
    unit_id: str,
    scope: str | None,
    before: RegistryView,
    after: RegistryView,
    days: Sequence[dt.date],
    *,
    structural: bool,
) -> list[FieldError]:
    """Whether the token bound to `scope` may make this change to `unit_id`.

    The rule, for every registry write: the token's unit must lie on the unit's path
    before the change (when the unit exists) and after it, on each of `days` (the dates
    the change takes effect) and on the latest placements. A structural change (parent,
    level, opening, closing, merge) needs the token's unit *strictly above* the unit in
    every one of those places: a token may rename its own unit or change its member
    count, never move, open, close or merge it. An admin token (`scope` None) may do all.
    """
    if scope is None:
        return []
    places: list[tuple[str, ...]] = []
    for view in (before, after):
        if unit_id not in view:
            continue
        for day in (*days, dt.date.max):
            try:
                places.append(view.path_on(unit_id, day))
            except PathError:
                places.append(())
    above = [p for p in places if scope in p and (not structural or p[-1] != scope)]
    if places and len(above) == len(places):
        return []
    why = (
        f"only a token strictly above {unit_id} may change its parent, opening or closing"
        if structural and all(scope in p for p in places)
        else f"{unit_id} lies outside the subtree of {scope}"
    )
    return [err(field, Reason.OUT_OF_SCOPE, why)]


def _identity_errors(
    incoming: Sequence[OrgUnit], stored: RegistryView, effectives: Sequence[dt.date | None]
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
        if old.has_dated_moves and old.unit.parent != u.parent and effectives[i] is None:
            errors.append(
                err(
                    f"[{i}].parent",
                    Reason.INVALID_FIELD,
                    f"{u.id} was moved with an effective date; give the row an "
                    f"effective date or use POST /v1/orgunits/{u.id}/move",
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
