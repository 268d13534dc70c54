"""Metric values as the API shows them: sums, ratios and tree-derived counts.

Sums come from the aggregates; ratios divide two sums at query time (None when the
denominator is 0); tree metrics come from the tree in force: `party_day.expected` counts
the branches active on each month's Party Day (summed over the months of the period),
`orgunits.branches` and `members.total` the active branches and their members at the
period's end.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from huibao_contracts.calendar import CalendarRules
from huibao_contracts.metrics import CATALOGUE, MetricKind
from huibao_contracts.periods import Period
from huibao_rollup.domain.tree import Tree

Value = int | float | None


def number(value: Decimal | int) -> int | float:
    """An int when integral, else a float: how amounts appear in JSON."""
    if isinstance(value, int):
        return value
    return int(value) if value == value.to_integral_value() else float(value)


def tree_metrics(tree: Tree, rules: CalendarRules, node: str, period: Period) -> dict[str, int]:
    """`party_day.expected`, `orgunits.branches` and `members.total` of `node` in `period`."""
    expected = sum(
        tree.snapshot(rules.party_day_date(m)).branches.get(node, 0) for m in period.months()
    )
    end = tree.snapshot(period.last_day)
    return {
        "party_day.expected": expected,
        "orgunits.branches": end.branches.get(node, 0),
        "members.total": end.members.get(node, 0),
    }


def public_metrics(sums: Mapping[str, Decimal], tree_values: Mapping[str, int]) -> dict[str, Value]:
    """Every public metric of the catalogue, in catalogue order."""
    out: dict[str, Value] = {}
    for m in CATALOGUE:
        if m.internal:
            continue
        if m.kind is MetricKind.SUM:
            out[m.name] = number(sums.get(m.name, Decimal(0)))
        elif m.kind is MetricKind.RATIO:
            den = sums.get(m.denominator or "", Decimal(0))
            num = sums.get(m.numerator or "", Decimal(0))
            out[m.name] = round(float(num / den), 6) if den else None
        else:
            out[m.name] = tree_values.get(m.name, 0)
    return out
