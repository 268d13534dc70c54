"""Folding a batch of events into facts and in-memory aggregate deltas.

Applying an event replaces the stored fact when its revision is higher: the aggregates
change by the difference, the old contribution leaving the old path and date, the new one
arriving through the new path and date. Nothing else changes, so a duplicate or a stale
revision changes nothing. Amounts are summed as `Decimal` so rebuilds compare exactly.

Aggregates are kept per (node, month, shard), every metric in one row (a vector in the
fixed slot order of `SLOTS`); quarters and years are sums of their months, added at query
time. A batch folds its events into one delta per (path, month, shard), then rolls those
up the path once, so each changed row is computed (and later written) once per batch.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from enum import StrEnum

from huibao_contracts.calendar import CalendarRules
from huibao_contracts.class_hours import DEFAULT_CLASS_HOURS, ClassHourRules
from huibao_contracts.metrics import SUMS
from huibao_rollup.domain import contribution as contrib
from huibao_rollup.domain.attribution import party_day_of, party_day_slot, periods_of
from huibao_rollup.domain.model import ActivityEvent, Contribution, Fact, Number
from huibao_rollup.domain.tree import Tree

Cell = tuple[str, str, str, int]
"""(node, period, metric, shard) of one aggregate value."""
Row = tuple[str, dt.date, int]
"""(node, first day of the month, shard) of one stored aggregate row."""
Amount = int | Decimal
Vector = dict[str, Amount]
"""Metric → amount of one row (metrics absent are 0)."""

SLOTS: tuple[str, ...] = SUMS
"""Position of every summed metric in a stored row's value array. Append only: a stored
array is read by position, so a new metric goes at the end, never in between. Rows are
stored without trailing zeros and read with `zip(..., strict=False)`, and `rollup.vadd`
adds arrays of any lengths, so rows written before a metric was appended read as 0 for
it: no migration. Facts stored before then carry no amount for it either (their stored
contribution is what rebuild and verify sum), so live and rebuilt agree; a replay of the
accepted topic (a fresh database) fills it in for old activities."""
SLOT = {m: i for i, m in enumerate(SLOTS)}
assert set(contrib.METRICS) <= set(SLOTS), "every contributed metric needs a slot"


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


def _add_into(into: Vector, vec: Vector) -> None:
    for m, v in vec.items():
        into[m] = into.get(m, 0) + v


class Deltas:
    """Aggregate changes of a batch, summed in memory (ints stay ints, the rest `Decimal`)."""

    def __init__(self) -> None:
        self._leaves: dict[tuple[tuple[str, ...], dt.date, int], Vector] = {}

    def add(
        self, path: tuple[str, ...], day: dt.date, amounts: Contribution, sign: int, shard: int
    ) -> None:
        """Add `sign` × `amounts` to every node of `path` in the month of `day`."""
        if not amounts:
            return
        key = (path, day.replace(day=1), shard)
        vec = self._leaves.get(key)
        if vec is None:
            vec = self._leaves[key] = {}
        get = vec.get
        for m, v in amounts.items():
            x = sign * (v if isinstance(v, int) else as_decimal(v))
            vec[m] = get(m, 0) + x

    def rows(self) -> list[tuple[Row, Vector]]:
        """The rows whose values change and by how much, sorted by key (a fixed lock order).

        Deltas are rolled up the path one level at a time, so a node shared by many paths
        (the city) is added to once per distinct parent path, not once per event."""
        out: dict[Row, Vector] = {}
        level = self._leaves
        while level:
            parents: dict[tuple[tuple[str, ...], dt.date, int], Vector] = {}
            for (path, month, shard), vec in level.items():
                row = (path[-1], month, shard)
                if (have := out.get(row)) is None:
                    out[row] = dict(vec)
                else:
                    _add_into(have, vec)
                if len(path) > 1:
                    up = (path[:-1], month, shard)
                    if (pv := parents.get(up)) is None:
                        parents[up] = dict(vec)
                    else:
                        _add_into(pv, vec)
            level = parents
        changed = []
        for row in sorted(out):
            vec = {m: v for m, v in out[row].items() if v}
            if vec:
                changed.append((row, vec))
        return changed

    def changed(self) -> list[tuple[Cell, Decimal]]:
        """Every (node, period, metric, shard) whose value changes, for the month, quarter
        and year, sorted by key: the logical view of `rows`."""
        cells: dict[Cell, Amount] = {}
        for (node, month, shard), vec in self.rows():
            for period in periods_of(month):
                for m, v in vec.items():
                    cell = (node, period, m, shard)
                    cells[cell] = cells.get(cell, 0) + v
        return sorted((c, Decimal(v)) for c, v in cells.items() if v)


class Fold:
    """Applies events in order on top of the stored facts of their activities."""

    def __init__(
        self,
        rules: CalendarRules,
        tree: Tree,
        stored: dict[str, Fact],
        class_hours: ClassHourRules = DEFAULT_CLASS_HOURS,
    ) -> None:
        self._rules = rules
        self._class_hours = class_hours
        self._tree = tree
        self.facts = dict(stored)
        self.changed: dict[str, Fact] = {}
        self.deltas = Deltas()
        self._days: dict[dt.date, tuple[dt.date, dt.datetime, dt.datetime]] = {}

    def _day(self, day: dt.date) -> tuple[dt.date, dt.datetime, dt.datetime]:
        """The Party Day of `day`'s month, the start of `day` and the month's deadline."""
        got = self._days.get(day)
        if got is None:
            rules = self._rules
            got = self._days[day] = (
                party_day_of(rules, day),
                contrib.start_of(rules, day),
                contrib.deadline_of(rules, day),
            )
        return got

    def apply(self, event: ActivityEvent) -> Outcome:
        """Apply one event; the tree must know its unit (see `Tree.knows_path`)."""
        type_ = event.type
        if not contrib.is_known_type(type_):
            return Outcome.IGNORED
        aid = event.activity_id
        revision = event.revision
        old = self.facts.get(aid)
        if old is not None and old.revision >= revision:
            return Outcome.DUPLICATE
        day = event.date
        retracted = event.retracted
        if type_ == contrib.PARTY_DAY:
            party_day, start, deadline = self._day(day)
            if old is not None:
                first = old.first_reported_at
            else:
                first = contrib.trusted_instant(start, event.time, event.received)
            on_time: bool | None = first <= deadline
            path, expected = party_day_slot(self._tree, event.unit, day, party_day)
        else:
            first = old.first_reported_at if old is not None else event.reported_at
            on_time, path, expected = None, self._tree.path_on(event.unit, day), True
        amounts = contrib.contribution(
            type_,
            event.data,
            retracted=retracted,
            on_time=on_time,
            expected=expected,
            class_hours=self._class_hours,
        )
        fact = Fact(
            aid,
            event.unit,
            type_,
            day,
            revision,
            event.message_key,
            first,
            on_time,
            retracted,
            amounts,
            path,
        )
        if old is not None:
            self.deltas.add(old.path, old.date, old.contribution, -1, event.shard)
        self.deltas.add(path, day, amounts, 1, event.shard)
        self.facts[aid] = fact
        self.changed[aid] = fact
        return Outcome.CORRECTED if old is not None else Outcome.APPLIED


def replaced(rules: CalendarRules, tree: Tree, fact: Fact) -> Fact:
    """`fact` attributed through `tree` as it stands now (the same rules as `Fold.apply`):
    its path, and for a Party Day whether its unit is expected; `fact` itself when neither
    changed. UnknownUnitError when its unit's path cannot be resolved."""
    if fact.type == contrib.PARTY_DAY:
        path, expected = party_day_slot(tree, fact.unit, fact.date, party_day_of(rules, fact.date))
        amounts = contrib.recounted(
            fact.type, fact.contribution, on_time=fact.on_time, expected=expected
        )
    else:
        path, amounts = tree.path_on(fact.unit, fact.date), fact.contribution
    if path == fact.path and amounts == fact.contribution:
        return fact
    return dataclasses.replace(fact, path=path, contribution=amounts)


def totals(facts: Iterable[Fact]) -> dict[tuple[str, str, str], Decimal]:
    """Aggregates recomputed from facts alone: what a rebuild must produce."""
    deltas = Deltas()
    for f in facts:
        deltas.add(f.path, f.date, f.contribution, 1, 0)
    return {(n, p, m): v for (n, p, m, _), v in deltas.changed()}
