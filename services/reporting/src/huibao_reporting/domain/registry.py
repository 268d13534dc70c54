"""A read-only view of the org-unit registry: units, their dated placements and paths.

A unit's parent may change over time (a move, a merge): each change is a `Placement`
valid from a date. `SINCE_ALWAYS` marks the placement in force before any dated change.
The path of a unit on a day follows, at every step up, the placement in force that day.
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
class UnitRecord:
    """A unit as stored: its current state and every placement, oldest first."""

    unit: OrgUnit
    placements: tuple[Placement, ...]

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


def record_of(unit: OrgUnit) -> UnitRecord:
    """A record for a unit that has no dated placement yet."""
    return UnitRecord(unit, (Placement(SINCE_ALWAYS, unit.parent),))


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
