"""A read-only view of the org-unit registry: units, their dated placements and paths.

A unit's parent may change over time (a move, a merge): each change is a `Placement`
valid from a date. `SINCE_ALWAYS` marks the placement in force before any dated change.
The path of a unit on a day follows, at every step up, the placement in force that day.

Names and member counts are dated the same way (`Label`), on a timeline of their own: a
rename from one day on holds across a move dated before or after it. Level, opening,
closing and the unit a merged unit went into belong to the unit, not to a date. The
*points* of a unit are the dates of its placements and labels; `state_on` gives the unit
as it stood on a day, and one `OrgUnitChange` is published per point (see
`registry_changes.republished`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from huibao_contracts.orgunits import OrgUnit

SINCE_ALWAYS = dt.date.min
"""`valid_from` of the placement that holds since always."""

MAX_DEPTH = 64
"""No tree is deeper than this; a longer walk means a cycle."""


class PathError(ValueError):
    """A path cannot be computed: an ancestor is unknown or the parents form a cycle."""


@dataclass(frozen=True, slots=True)
class Placement:
    """The parent of a unit from `valid_from` on (until the next placement)."""

    valid_from: dt.date
    parent: str | None


@dataclass(frozen=True, slots=True)
class Label:
    """The name and member count of a unit from `valid_from` on (until the next label)."""

    valid_from: dt.date
    name: str
    members: int


@dataclass(frozen=True, slots=True)
class UnitRecord:
    """A unit as stored: its latest state, every placement and every label, oldest first.

    No labels means one label since always with the name and members of `unit`. `marks`
    are points that change neither parent nor label (the day of a close or a merge): a
    version is published from them, so they stay points of the unit."""

    unit: OrgUnit
    placements: tuple[Placement, ...]
    labels: tuple[Label, ...] = ()
    merged_into: str | None = None
    marks: tuple[dt.date, ...] = ()

    @property
    def id(self) -> str:
        """The unit id."""
        return self.unit.id

    def parent_on(self, day: dt.date) -> str | None:
        """The parent in force on `day` (the earliest placement before any dated change)."""
        current = self.placements[0].parent if self.placements else self.unit.parent
        for p in self.placements:
            if p.valid_from <= day:
                current = p.parent
            else:
                break
        return current

    @property
    def has_dated_moves(self) -> bool:
        """True when the unit has been moved with an effective date."""
        return any(p.valid_from != SINCE_ALWAYS for p in self.placements)

    @property
    def all_labels(self) -> tuple[Label, ...]:
        """The labels, oldest first (one since always when none is stored)."""
        return self.labels or (Label(SINCE_ALWAYS, self.unit.name, self.unit.members),)

    def label_on(self, day: dt.date) -> Label:
        """The label in force on `day` (the earliest one before any dated label)."""
        labels = self.all_labels
        current = labels[0]
        for label in labels:
            if label.valid_from <= day:
                current = label
            else:
                break
        return current

    def points(self) -> list[dt.date]:
        """The dates from which the unit's dated state changes, oldest first."""
        return sorted(
            {p.valid_from for p in self.placements}
            | {x.valid_from for x in self.all_labels}
            | set(self.marks)
        )

    def state_on(self, day: dt.date) -> OrgUnit:
        """The unit as it stood on `day`: the parent, name and members in force then."""
        label = self.label_on(day)
        return self.unit.model_copy(
            update={"parent": self.parent_on(day), "name": label.name, "members": label.members}
        )

    def with_label(self, day: dt.date, name: str, members: int) -> UnitRecord:
        """This record with `name` and `members` from `day` on (replacing a label that
        starts the same day); `unit` keeps the latest label."""
        kept = [x for x in self.all_labels if x.valid_from != day]
        labels = tuple(sorted([*kept, Label(day, name, members)], key=lambda x: x.valid_from))
        latest = labels[-1]
        unit = self.unit.model_copy(update={"name": latest.name, "members": latest.members})
        return UnitRecord(unit, self.placements, labels, self.merged_into, self.marks)

    def placed(self, day: dt.date, parent: str | None) -> UnitRecord:
        """This record under `parent` from `day` on (replacing a placement of that day);
        `unit` keeps the latest parent."""
        kept = [p for p in self.placements if p.valid_from != day]
        placements = tuple(sorted([*kept, Placement(day, parent)], key=lambda p: p.valid_from))
        unit = self.unit.model_copy(update={"parent": placements[-1].parent})
        return UnitRecord(unit, placements, self.labels, self.merged_into, self.marks)

    def with_point(self, day: dt.date) -> UnitRecord:
        """This record with a point on `day` (a mark when nothing else starts that day):
        a close or a merge publishes a version from its date."""
        if day in self.points():
            return self
        marks = tuple(sorted({*self.marks, day}))
        return UnitRecord(self.unit, self.placements, self.labels, self.merged_into, marks)

    def with_unit(self, unit: OrgUnit, merged_into: str | None = None) -> UnitRecord:
        """This record's history with `unit`'s own attributes (level, opening, closing) and,
        when given, the unit it was merged into."""
        into = merged_into if merged_into is not None else self.merged_into
        return UnitRecord(unit, self.placements, self.labels, into, self.marks)


def record_of(unit: OrgUnit) -> UnitRecord:
    """A record for a unit that has no dated placement or label yet."""
    return UnitRecord(
        unit,
        (Placement(SINCE_ALWAYS, unit.parent),),
        (Label(SINCE_ALWAYS, unit.name, unit.members),),
    )


class RegistryView:
    """Units by id, with path computation on any day. Built by an adapter or a test."""

    def __init__(self, records: Iterable[UnitRecord] = ()) -> None:
        self._records: dict[str, UnitRecord] = {r.id: r for r in records}

    def get(self, unit_id: str) -> UnitRecord | None:
        """The record of `unit_id`, or None when the unit is unknown."""
        return self._records.get(unit_id)

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self._records

    def __len__(self) -> int:
        return len(self._records)

    @property
    def records(self) -> Mapping[str, UnitRecord]:
        """Every record of the view, by id."""
        return self._records

    def with_records(self, records: Iterable[UnitRecord]) -> RegistryView:
        """A new view where `records` replace or add to this view's records."""
        view = RegistryView(self._records.values())
        view._records.update({r.id: r for r in records})
        return view

    def path_on(self, unit_id: str, day: dt.date | None = None) -> tuple[str, ...]:
        """Ancestor ids root → unit on `day` (the latest placements when None).

        Raises PathError when an ancestor is unknown or the parents form a cycle.
        """
        when = day or dt.date.max
        path = [unit_id]
        seen = {unit_id}
        current = self._records.get(unit_id)
        if current is None:
            raise PathError(f"unknown unit {unit_id!r}")
        while (parent := current.parent_on(when)) is not None:
            if parent in seen or len(path) > MAX_DEPTH:
                cycle = " → ".join([*reversed(path), parent])
                raise PathError(f"the parents form a cycle: {cycle}")
            nxt = self._records.get(parent)
            if nxt is None:
                raise PathError(f"unknown ancestor {parent!r} of {unit_id!r}")
            path.append(parent)
            seen.add(parent)
            current = nxt
        return tuple(reversed(path))

    def children_on(self, unit_id: str, day: dt.date | None = None) -> list[str]:
        """Ids of the units whose parent is `unit_id` on `day` (latest placements if None)."""
        when = day or dt.date.max
        return sorted(r.id for r in self._records.values() if r.parent_on(when) == unit_id)

    def within(self, unit_id: str, scope: str | None, day: dt.date | None = None) -> bool:
        """True when `scope` is None (the whole tree) or lies on the path of `unit_id`."""
        if scope is None:
            return True
        try:
            return scope in self.path_on(unit_id, day)
        except PathError:
            return False
