"""Attributing a fact: its unit and date → every (node, period) it counts in.

A fact counts for its unit and every ancestor on the path in force on its date, for the
month, quarter and year of that date.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

from huibao_contracts.periods import Period
from huibao_rollup.domain.tree import Tree

Key = tuple[str, str]
"""(node, period) of one aggregate cell, the period in its text form (`2026-05`)."""


@lru_cache(maxsize=4096)
def periods_of(day: dt.date) -> tuple[str, str, str]:
    """The month, quarter and year of `day`, as text."""
    month, quarter, year = Period.all_of(day)
    return str(month), str(quarter), str(year)


def keys(path: tuple[str, ...], day: dt.date) -> list[Key]:
    """Every (node, period) a fact with `path` and `day` counts in."""
    periods = periods_of(day)
    return [(node, period) for node in path for period in periods]


def attribute(tree: Tree, unit: str, day: dt.date) -> tuple[str, ...]:
    """The path (root → unit) a fact of `unit` dated `day` is attributed through."""
    return tree.path_on(unit, day)
