"""Completeness of a Party Day cycle: who was expected, who held it, on time or late."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Held:
    """One branch's Party Day report in the month."""

    unit: str
    on_time: bool
    reported_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Completeness:
    """Counts and lists of one node's Party Day cycle for one month."""

    expected: int
    held: int
    on_time: int
    late: int
    missing: list[str] = field(default_factory=list)
    late_units: list[Held] = field(default_factory=list)


def completeness(expected: Iterable[str], held: Iterable[Held]) -> Completeness:
    """Compare the branches expected with the reports held.

    A branch counts once however many reports it sent; it is on time when any of them was.
    Branches that reported without being expected (closed since) still count as held.
    """
    by_unit: dict[str, Held] = {}
    for h in held:
        seen = by_unit.get(h.unit)
        if (
            seen is None
            or (h.on_time and not seen.on_time)
            or (h.on_time == seen.on_time and h.reported_at < seen.reported_at)
        ):
            by_unit[h.unit] = h
    expected_ids = sorted(set(expected))
    missing = [u for u in expected_ids if u not in by_unit]
    late = sorted((h for h in by_unit.values() if not h.on_time), key=lambda h: h.unit)
    return Completeness(
        expected=len(expected_ids),
        held=len(by_unit),
        on_time=len(by_unit) - len(late),
        late=len(late),
        missing=missing,
        late_units=late,
    )
