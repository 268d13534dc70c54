"""Dated changes of the registry: move, merge and close, each with an effective date.

Each planner checks the request against a registry view holding the unit, its children
and the ancestors of every unit involved, and answers field errors or the `Change`s to
store and publish. History before the effective date stays as it was.

A change publishes one `OrgUnitChange` per point of the unit on or after the date it
takes effect (`republished`): each is the unit's whole state from that point on, so a
point after the change (a later move, a later rename) is published again with what the
change altered (a closing, a merge) and keeps what it did not (its own parent and name).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from huibao_contracts.orgunits import OrgUnit
from huibao_contracts.rejects import FieldError, Reason
from huibao_reporting.domain.registry import (
    SINCE_ALWAYS,
    PathError,
    RegistryView,
    UnitRecord,
)
from huibao_reporting.domain.registry_rules import ImportKind, ImportPlan, check_level, err

ChangeKind = Literal["upsert", "move", "merge", "close"]


@dataclass(frozen=True, slots=True)
class Change:
    """One unit's new state to store, and to publish as an `OrgUnitChange`."""

    kind: ChangeKind
    effective: dt.date | None
    record: UnitRecord
    path: tuple[str, ...]
    merged_into: str | None = None
    state: OrgUnit | None = None
    """The unit as published (its state from `effective` on); None means `record.unit`."""

    @property
    def published_unit(self) -> OrgUnit:
        """The unit the published change carries."""
        return self.state if self.state is not None else self.record.unit


def republished(
    kind: ChangeKind, record: UnitRecord, view: RegistryView, since: dt.date
) -> list[Change]:
    """One change per point of `record` on or after `since`, oldest first, each with the
    unit's state and path from that point on; the first has `kind`, the later ones
    (published again with what changed) are upserts. `view` holds the registry after
    the change (`record` included) with every ancestor."""
    out: list[Change] = []
    points = record.points()
    for point in points:
        if point < since:
            continue
        out.append(
            Change(
                kind if not out else "upsert",
                None if point == SINCE_ALWAYS else point,
                record,
                view.path_on(record.id, point),
                record.merged_into,
                None if len(points) == 1 else record.state_on(point),  # one point: the unit
            )
        )
    return out


def import_changes(plan: ImportPlan, stored: RegistryView) -> list[Change]:
    """The changes an import plan publishes: for every created or updated unit, parents
    first, its versions from the first day it differs (a changed parent with a date is a
    move; anything else an upsert). An unchanged unit publishes nothing."""
    changes: list[Change] = []
    for p in plan.units:
        if p.kind is ImportKind.UNCHANGED:
            continue
        old = stored.get(p.unit.id)
        dated_move = (
            old is not None and old.placements != p.record.placements and p.since != SINCE_ALWAYS
        )
        changes += republished("move" if dated_move else "upsert", p.record, plan.after, p.since)
    return changes


def _active_error(record: UnitRecord, day: dt.date, field: str) -> FieldError | None:
    if not record.unit.active_on(day):
        return err(field, Reason.UNIT_INACTIVE, f"{record.id} is not active on {day}")
    return None


def placed(record: UnitRecord, parent: str | None, effective: dt.date) -> UnitRecord:
    """`record` under `parent` from `effective` on (replacing a placement of that day)."""
    return record.placed(effective, parent)


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
    moved = placed(record, parent_id, effective)
    after = view.with_records([moved])
    return republished("move", moved, after, effective)


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
    closed = _closed(record, effective)
    after = view.with_records([closed])
    return republished("close", closed, after, effective)


def _closed(record: UnitRecord, effective: dt.date, into: str | None = None) -> UnitRecord:
    pointed = record.with_point(effective)
    return pointed.with_unit(pointed.unit.model_copy(update={"closed": effective}), into)


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
    if into.merged_into is not None:  # merges never chain: no cycle of merges, ever
        return [
            err(
                "into",
                Reason.UNIT_INACTIVE,
                f"{into_id} was itself merged into {into.merged_into}; merge into that unit",
            )
        ]
    children = [
        c
        for c in view.children_on(unit_id, effective)
        if (child := view.get(c)) is not None
        and (child.unit.closed is None or child.unit.closed > effective)
    ]
    closed = _closed(record, effective, into_id)
    moved = [placed(r, into_id, effective) for c in children if (r := view.get(c)) is not None]
    after = view.with_records([closed, *moved])
    changes = republished("merge", closed, after, effective)
    for m in moved:
        changes += republished("move", m, after, effective)
    return changes
