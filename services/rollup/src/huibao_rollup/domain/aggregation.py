"""Folding a batch of events into facts and in-memory aggregate deltas.

Applying an event replaces the stored fact when its revision is higher: the aggregates
change by the difference, the old contribution leaving the old path and date, the new one
arriving through the new path and date. Nothing else changes, so a duplicate or a stale
revision changes nothing. Amounts are summed as `Decimal` so rebuilds compare exactly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from enum import StrEnum

from huibao_contracts.calendar import CalendarRules
from huibao_rollup.domain import contribution as contrib
from huibao_rollup.domain.attribution import attribute, keys
from huibao_rollup.domain.model import ActivityEvent, Contribution, Fact, Number
from huibao_rollup.domain.tree import Tree

Cell = tuple[str, str, str, int]
"""(node, period, metric, shard) of one aggregate row."""


class Outcome(StrEnum):
    """What applying one event did."""

    APPLIED = "applied"
    CORRECTED = "corrected"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


def as_decimal(value: Number | Decimal) -> Decimal:
    """An exact decimal of a JSON number (floats through their shortest repr)."""
    if isinstance(value, Decimal):
        return value
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


class Deltas:
    """Aggregate changes per cell, summed in memory (ints stay ints, the rest `Decimal`)."""

    def __init__(self) -> None:
        self.cells: dict[Cell, int | Decimal] = {}

    def add(
        self, path: tuple[str, ...], day: dt.date, amounts: Contribution, sign: int, shard: int
    ) -> None:
        """Add `sign` × `amounts` to every (node, period) of `path` and `day`."""
        if not amounts:
            return
        exact = [
            (m, sign * (v if isinstance(v, int) else as_decimal(v))) for m, v in amounts.items()
        ]
        cells = self.cells
        get = cells.get
        for node, period in keys(path, day):
            for metric, value in exact:
                cell = (node, period, metric, shard)
                cells[cell] = get(cell, 0) + value

    def changed(self) -> list[tuple[Cell, Decimal]]:
        """The cells whose value changes, sorted by key (a fixed lock order)."""
        return sorted((c, Decimal(v)) for c, v in self.cells.items() if v)


class Fold:
    """Applies events in order on top of the stored facts of their activities."""

    def __init__(self, rules: CalendarRules, tree: Tree, stored: dict[str, Fact]) -> None:
        self._rules = rules
        self._tree = tree
        self.facts = dict(stored)
        self.changed: dict[str, Fact] = {}
        self.deltas = Deltas()

    def apply(self, event: ActivityEvent) -> Outcome:
        """Apply one event; the tree must know its unit (see `Tree.knows_path`)."""
        if not contrib.is_known_type(event.type):
            return Outcome.IGNORED
        aid = event.activity_id
        old = self.facts.get(aid)
        if old is not None and old.revision >= event.revision:
            return Outcome.DUPLICATE
        day = event.date
        first = old.first_reported_at if old is not None else event.reported_at
        on_time = contrib.on_time(self._rules, event.type, day, first)
        amounts = contrib.contribution(
            event.type, event.data, retracted=event.retracted, on_time=on_time
        )
        path = attribute(self._tree, event.unit, day)
        fact = Fact(
            activity_id=aid,
            unit=event.unit,
            type=event.type,
            date=day,
            revision=event.revision,
            message_key=event.message_key,
            first_reported_at=first,
            on_time=on_time,
            retracted=event.retracted,
            contribution=amounts,
            path=path,
        )
        if old is not None:
            self.deltas.add(old.path, old.date, old.contribution, -1, event.shard)
        self.deltas.add(path, day, amounts, 1, event.shard)
        self.facts[aid] = fact
        self.changed[aid] = fact
        return Outcome.CORRECTED if old is not None else Outcome.APPLIED


def totals(facts: Iterable[Fact]) -> dict[tuple[str, str, str], Decimal]:
    """Aggregates recomputed from facts alone: what a rebuild must produce."""
    deltas = Deltas()
    for f in facts:
        deltas.add(f.path, f.date, f.contribution, 1, 0)
    return {(n, p, m): v for (n, p, m, _), v in deltas.changed()}
