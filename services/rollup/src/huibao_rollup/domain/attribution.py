"""Attributing a fact: its unit and date → every (node, period) it counts in.

A fact counts for its unit and every ancestor on the path in force on its date
(`Tree.path_on`), for the month, quarter and year of that date; a Party Day fact counts
through the path in force on its month's Party Day (the 26th) instead, the day
completeness asks who is expected, so that a branch counts as held exactly where it
counts as expected (docs/architecture.md, "Party Day completeness").
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

from huibao_contracts.calendar import CalendarRules
from huibao_contracts.periods import Period
from huibao_rollup.domain.snapshot import BRANCH
from huibao_rollup.domain.tree import Tree, UnknownUnitError


@lru_cache(maxsize=4096)
def periods_of(day: dt.date) -> tuple[str, str, str]:
    """The month, quarter and year of `day`, as text."""
    month, quarter, year = Period.all_of(day)
    return str(month), str(quarter), str(year)


@lru_cache(maxsize=1024)
def party_day_of(rules: CalendarRules, day: dt.date) -> dt.date:
    """The Party Day of the month of `day`."""
    return rules.party_day_date(Period.month_of(day))


def party_day_slot(
    tree: Tree, unit: str, day: dt.date, party_day: dt.date
) -> tuple[tuple[str, ...], bool]:
    """Where a Party Day of `unit` dated `day` counts: the path on its month's Party Day
    (`party_day`, see `party_day_of`), and whether `unit` is expected then (a branch active
    on that day). A unit whose chain cannot be resolved on that day (created later under a
    parent created later still) counts through its path on `day`, as not expected."""
    try:
        path = tree.path_on(unit, party_day)
    except UnknownUnitError:
        return tree.path_on(unit, day), False
    v = tree.version_on(unit, party_day)  # the path is known: `Tree.is_active_branch`
    return path, v is not None and v.level == BRANCH and v.active_on(party_day)
