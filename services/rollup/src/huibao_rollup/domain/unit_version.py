"""One state of an org unit over time: what an `OrgUnitChange` says, in force from its
`effective` date until the unit's next version (see `huibao_rollup.domain.tree`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from huibao_contracts.orgunits import OrgUnitChange

ALWAYS = dt.date.min
"""The `effective` of a version that holds since always."""


@dataclass(frozen=True, slots=True)
class UnitVersion:
    """One state of a unit, in force from `effective` until the unit's next version."""

    unit: str
    effective: dt.date
    seq: int
    kind: str
    name: str
    level: str
    parent: str | None
    members: int
    opened: dt.date | None
    closed: dt.date | None
    merged_into: str | None = None

    def active_on(self, day: dt.date) -> bool:
        """True when the unit is open on `day`."""
        return (self.opened is None or self.opened <= day) and (
            self.closed is None or day < self.closed
        )

    def merged_away(self, day: dt.date) -> bool:
        """True when the unit was merged into another on or before `day`."""
        return self.merged_into is not None and self.closed is not None and self.closed <= day

    @classmethod
    def of(cls, change: OrgUnitChange) -> UnitVersion:
        """The version a published change describes."""
        u = change.unit
        return cls(
            unit=u.id,
            effective=change.effective or ALWAYS,
            seq=change.seq,
            kind=change.kind,
            name=u.name,
            level=str(u.level),
            parent=u.parent,
            members=u.members,
            opened=u.opened,
            closed=u.closed,
            merged_into=change.merged_into,
        )
