"""Completeness of a Party Day cycle: who was expected, who held it, on time or late.

The rules (docs/architecture.md, "Party Day completeness"): a branch is expected for a month
under a node when it is active on the month's Party Day and the node is on its path in the
tree in force that day; its Party Day report counts as held there (the fact is attributed
through that same path), on time or late; a report of a unit not expected counts as
unexpected. A month's own figures are live from its start; a quarter or a year counts
only the months whose Party Day has come (`due_months`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from huibao_contracts.calendar import CalendarRules
from huibao_contracts.periods import Period, PeriodKind


@dataclass(frozen=True, slots=True)
class Held:
    """One branch's Party Day report in the month."""

    unit: str
    on_time: bool
    reported_at: dt.datetime
    expected: bool = True
    """False for a report of a unit not expected that month (counted as unexpected)."""


@dataclass(frozen=True, slots=True)
class Completeness:
    """Counts and lists of one node's Party Day cycle for one month."""

    expected: int
    held: int
    on_time: int
    late: int
    missing: list[str] = field(default_factory=list)
    late_units: list[Held] = field(default_factory=list)
    unexpected_units: list[Held] = field(default_factory=list)

    @property
    def unexpected(self) -> int:
        """Reports of units that were not expected."""
        return len(self.unexpected_units)


def completeness(expected: Iterable[str], held: Iterable[Held]) -> Completeness:
    """Compare the branches expected with the reports held.

    A branch counts once however many reports it sent (reporting accepts one per branch and
    month); it is on time when any of them was. Reports of units not expected are listed
    apart and counted in neither held nor missing.
    """
    by_unit: dict[str, Held] = {}
    unexpected: dict[str, Held] = {}
    for h in held:
        if not h.expected:
            if h.unit not in unexpected or h.reported_at < unexpected[h.unit].reported_at:
                unexpected[h.unit] = h
            continue
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
        unexpected_units=[unexpected[u] for u in sorted(unexpected)],
    )


def is_due(rules: CalendarRules, month: Period, today: dt.date) -> bool:
    """True once the month's Party Day has come (local date `today`)."""
    return rules.party_day_date(month) <= today


def due_months(rules: CalendarRules, period: Period, today: dt.date) -> Sequence[Period]:
    """The months whose Party Day figures `period` counts: a month counts itself (live from
    its start, so the reminders and the current month's list work before the Party Day);
    a quarter or a year counts only its months whose Party Day has come by `today`."""
    if period.kind is PeriodKind.MONTH:
        return [period]
    return [m for m in period.months() if is_due(rules, m, today)]
