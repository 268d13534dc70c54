"""Dated changes of the registry: move, merge and close, each with an effective date.

Each planner checks the request against a registry view holding the unit, its children
and the ancestors of every unit involved, and answers field errors or the `Change`s to
store and publish. History before the effective date stays as it was.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from huibao_contracts.rejects import FieldError, Reason
from huibao_reporting.domain.registry import (
    PathError,
    Placement,
    RegistryView,
    UnitRecord,
)
from huibao_reporting.domain.registry_rules import check_level, err

ChangeKind = Literal["upsert", "move", "merge", "close"]


@dataclass(frozen=True, slots=True)
class Change:
    """One unit's new state to store, and to publish as an `OrgUnitChange`."""

    kind: ChangeKind
    effective: dt.date | None
    record: UnitRecord
    path: tuple[str, ...]
    merged_into: str | None = None


def _active_error(record: UnitRecord, day: dt.date, field: str) -> FieldError | None:
    if not record.unit.active_on(day):
        return err(field, Reason.UNIT_INACTIVE, f"{record.id} is not active on {day}")
    return None


def _placed(record: UnitRecord, parent: str, effective: dt.date) -> UnitRecord:
    kept = [p for p in record.placements if p.valid_from != effective]
    placements = tuple(sorted([*kept, Placement(effective, parent)], key=lambda p: p.valid_from))
    latest = placements[-1].parent
    return UnitRecord(record.unit.model_copy(update={"parent": latest}), placements)


def plan_move(  # noqa: PLR0911 (a ladder of checks reads best as early returns)
    view: RegistryView, unit_id: str, parent_id: str, effective: dt.date
) -> list[Change] | list[FieldError]:
    """Move `unit_id` under `parent_id` from `effective` on; [] when already there."""
    record = view.get(unit_id)
    if record is None:
        return [err("id", Reason.UNKNOWN_UNIT, f"unknown unit {unit_id}")]
    parent = view.get(parent_id)
    if parent is None:
        return [err("parent", Reason.UNKNOWN_UNIT, f"unknown parent {parent_id}")]
    errors = [
        e
        for e in (
            _active_error(record, effective, "effective"),
            _active_error(parent, effective, "parent"),
            check_level(record.unit, parent.unit, "parent"),
        )
        if e is not None
    ]
    if errors:
        return errors
    try:
        if unit_id in view.path_on(parent_id, effective) or unit_id in view.path_on(parent_id):
            return [
                err(
                    "parent",
                    Reason.INVALID_FIELD,
                    f"{parent_id} lies inside {unit_id}: the move would make a cycle",
                )
            ]
    except PathError as e:
        return [err("parent", Reason.INVALID_FIELD, str(e))]
    if record.parent_on(effective) == parent_id:
        return []
    moved = _placed(record, parent_id, effective)
    after = view.with_records([moved])
    return [Change("move", effective, moved, after.path_on(unit_id, effective))]


def plan_close(
    view: RegistryView, unit_id: str, effective: dt.date
) -> list[Change] | list[FieldError]:
    """Close `unit_id` from `effective` on; it must have no active child then."""
    record = view.get(unit_id)
    if record is None:
        return [err("id", Reason.UNKNOWN_UNIT, f"unknown unit {unit_id}")]
    unit = record.unit
    if unit.opened is not None and effective <= unit.opened:
        return [
            err(
                "effective",
                Reason.INVALID_FIELD,
                f"{unit_id} opened on {unit.opened}; it can only close after that",
            )
        ]
    if unit.closed is not None and unit.closed == effective:
        return []
    if unit.closed is not None and unit.closed < effective:
        return [
            err("effective", Reason.UNIT_INACTIVE, f"{unit_id} is already closed on {unit.closed}")
        ]
    active = [
        c
        for c in view.children_on(unit_id, effective)
        if (child := view.get(c)) is not None and child.unit.active_on(effective)
    ]
    if active:
        shown = ", ".join(active[:10]) + (" …" if len(active) > 10 else "")
        return [
            err(
                "effective",
                Reason.INVALID_FIELD,
                f"{unit_id} still has {len(active)} active children on {effective} ({shown}); "
                "move, merge or close them first",
            )
        ]
    closed = UnitRecord(unit.model_copy(update={"closed": effective}), record.placements)
    after = view.with_records([closed])
    return [Change("close", effective, closed, after.path_on(unit_id, effective))]


def plan_merge(  # noqa: PLR0911 (a ladder of checks reads best as early returns)
    view: RegistryView, unit_id: str, into_id: str, effective: dt.date
) -> list[Change] | list[FieldError]:
    """Merge `unit_id` into `into_id` from `effective` on: the unit closes and its children
    move under `into_id`. The merge change comes first, then one move per child."""
    record = view.get(unit_id)
    if record is None:
        return [err("id", Reason.UNKNOWN_UNIT, f"unknown unit {unit_id}")]
    into = view.get(into_id)
    if into is None:
        return [err("into", Reason.UNKNOWN_UNIT, f"unknown unit {into_id}")]
    if into_id == unit_id:
        return [err("into", Reason.INVALID_FIELD, "a unit cannot be merged into itself")]
    if into.unit.level is not record.unit.level:
        return [
            err(
                "into",
                Reason.WRONG_LEVEL,
                f"a {record.unit.level} can only merge into another {record.unit.level}, "
                f"not a {into.unit.level}",
            )
        ]
    errors = [
        e
        for e in (
            _active_error(record, effective, "effective"),
            _active_error(into, effective, "into"),
        )
        if e is not None
    ]
    if errors:
        return errors
    if unit_id in view.path_on(into_id, effective):
        return [err("into", Reason.INVALID_FIELD, f"{into_id} lies inside {unit_id}")]
    children = [
        c
        for c in view.children_on(unit_id, effective)
        if (child := view.get(c)) is not None
        and (child.unit.closed is None or child.unit.closed > effective)
    ]
    closed = UnitRecord(record.unit.model_copy(update={"closed": effective}), record.placements)
    moved = [_placed(r, into_id, effective) for c in children if (r := view.get(c)) is not None]
    after = view.with_records([closed, *moved])
    changes = [Change("merge", effective, closed, after.path_on(unit_id, effective), into_id)]
    changes += [Change("move", effective, m, after.path_on(m.id, effective)) for m in moved]
    return changes
