"""Metric values as the API shows them: sums, ratios and tree-derived counts.

Sums come from the aggregates; ratios divide two values of the same node and period at
query time, a sum by a sum or by a tree metric (`party_day.reporting_rate` = held /
expected), never an average of the children's ratios; None when the denominator is 0
(JSON null, an empty CSV cell); tree metrics come from the tree in force:
`party_day.expected` counts the branches active on each month's Party Day (summed over
the months of the period whose Party Day figures count, `domain.completeness.due_months`),
`orgunits.branches` and `members.total` the active branches and their members at the
period's end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def tree_metrics(
    tree: Tree,
    rules: CalendarRules,
    node: str,
    period: Period,
    due: Sequence[Period] | None = None,
) -> dict[str, int]:
    """`party_day.expected`, `orgunits.branches` and `members.total` of `node` in `period`;
    `party_day.expected` over the months `due` (all of the period's when None)."""
    return tree_metrics_of(tree, rules, [node], period, due)[node]


def tree_metrics_of(
    tree: Tree,
    rules: CalendarRules,
    nodes: Sequence[str],
    period: Period,
    due: Sequence[Period] | None = None,
) -> dict[str, dict[str, int]]:
    """`tree_metrics` of several nodes, each snapshot looked up once for all of them."""
    months = period.months() if due is None else due
    party_days = [tree.snapshot(rules.party_day_date(m)).branches for m in months]
    end = tree.snapshot(period.last_day)
    branches, members = end.branches, end.members
    return {
        node: {
            "party_day.expected": sum(days.get(node, 0) for days in party_days),
            "orgunits.branches": branches.get(node, 0),
            "members.total": members.get(node, 0),
        }
        for node in nodes
    }


_PUBLIC = tuple(
    (m.name, m.kind, m.numerator or "", m.denominator or "") for m in CATALOGUE if not m.internal
)
_ZERO = Decimal(0)
_TREE = frozenset(m.name for m in CATALOGUE if m.kind is MetricKind.TREE)


def ratio(numerator: Decimal | int, denominator: Decimal | int) -> float | None:
    """`numerator` / `denominator` rounded to 6 places; None when the denominator is 0."""
    if not denominator:
        return None
    return round(float(Decimal(numerator) / Decimal(denominator)), 6)


def public_metrics(sums: Mapping[str, Decimal], tree_values: Mapping[str, int]) -> dict[str, Value]:
    """Every public metric of the catalogue, in catalogue order."""
    out: dict[str, Value] = {}
    get = sums.get

    def operand(metric: str) -> Decimal | int:
        if metric in _TREE:
            return tree_values.get(metric, 0)
        return get(metric, _ZERO)

    for name, kind, numerator, denominator in _PUBLIC:
        if kind is MetricKind.SUM:
            value = get(name)
            out[name] = 0 if value is None else number(value)
        elif kind is MetricKind.RATIO:
            out[name] = ratio(operand(numerator), operand(denominator))
        else:
            out[name] = tree_values.get(name, 0)
    return out
