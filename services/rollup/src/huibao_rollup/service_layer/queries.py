"""The read side: answers of the query API, built from aggregates, facts and the tree.

Nodes are described with the tree as it stands today; a period's numbers use the tree in
force during that period (see `domain.views`). Errors are raised as `QueryError`s
(`huibao_rollup.errors`), which the HTTP entrypoint maps to 404, 403 and 422.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from huibao_contracts.calendar import CalendarRules
from huibao_contracts.metrics import PUBLIC
from huibao_contracts.periods import InvalidPeriodError, Period, PeriodKind, month_range
from huibao_platform.auth import Principal
from huibao_platform.clock import Clock
from huibao_rollup.domain.completeness import completeness, due_months
from huibao_rollup.domain.tree import Tree, UnknownUnitError
from huibao_rollup.domain.views import Value, public_metrics, tree_metrics, tree_metrics_of
from huibao_rollup.errors import InvalidQueryError, OutOfScopeError, UnknownNodeError
from huibao_rollup.service_layer.ports import QueryReads

MAX_SERIES_MONTHS = 240


def parse_period(text: str, field: str = "period", *, month_only: bool = False) -> Period:
    """A period from the query string, or a 422 naming the field."""
    try:
        period = Period.parse(text)
    except InvalidPeriodError as e:
        raise InvalidQueryError(field, str(e)) from e
    if month_only and period.kind is not PeriodKind.MONTH:
        raise InvalidQueryError(field, f"{text!r} is not a month (YYYY-MM)")
    return period


def page(items: list[Any], limit: int, offset: int) -> dict[str, Any]:
    """One page of a list, with its total."""
    return {
        "total": len(items),
        "offset": offset,
        "limit": limit,
        "items": items[offset : offset + limit],
    }


def _without_party_days(
    values: dict[str, Decimal], months: list[dict[str, Decimal]]
) -> dict[str, Decimal]:
    """`values` minus the Party Day sums of `months`."""
    out = dict(values)
    for month in months:
        for metric, value in month.items():
            if metric.startswith(_PARTY_DAY):
                out[metric] = out.get(metric, _ZERO) - value
    return out


_PARTY_DAY = "party_day."
_ZERO = Decimal(0)


class Queries:
    """Builds every answer of the query API."""

    def __init__(self, repo: QueryReads, tree: Tree, rules: CalendarRules, clock: Clock) -> None:
        self._repo = repo
        self._tree = tree
        self._rules = rules
        self._clock = clock

    def today(self) -> dt.date:
        """The local date now."""
        return self._rules.local_date(self._clock.now())

    def days_in_use(self) -> list[dt.date]:
        """The days whose tree snapshots queries of the current periods ask for: today,
        and the Party Day and last day of this month and the two before, of this quarter
        and of this year (several usually fall in one stretch and share a snapshot)."""
        today = self.today()
        month = Period.month_of(today)
        months = [month, month.previous(), month.previous().previous()]
        days = [today]
        for m in months:
            days += [self._rules.party_day_date(m), m.last_day]
        days += [Period.quarter_of(today).last_day, Period.year_of(today).last_day]
        days += [self._rules.party_day_date(m) for m in Period.year_of(today).months()]
        return list(dict.fromkeys(days))

    def _path(self, node: str, day: dt.date) -> tuple[str, ...]:
        try:
            return self._tree.path_on(node, day)
        except UnknownUnitError:
            return (node,)

    def authorize(self, principal: Principal, node: str) -> None:
        """404 for an unknown node, 403 when it lies outside the principal's subtree."""
        if node not in self._tree:
            raise UnknownNodeError(f"no org unit {node!r}")
        if principal.is_admin or principal.unit in self._path(node, self.today()):
            return
        raise OutOfScopeError(f"{node!r} is outside the subtree of {principal.unit!r}")

    def brief(self, node: str) -> dict[str, Any]:
        """`{"id","name","level","parent"}` of a node as it stands today."""
        today = self.today()
        v = self._tree.current(node, today)
        assert v is not None
        try:
            parent = self._tree.parent_on(node, today)
        except UnknownUnitError:
            parent = v.parent
        return {"id": node, "name": v.name, "level": v.level, "parent": parent}

    def node(self, node: str) -> dict[str, Any]:
        """A node with its path, members, dates and current children."""
        today = self.today()
        v = self._tree.current(node, today)
        assert v is not None
        snap = self._tree.snapshot(today)
        return {
            **self.brief(node),
            "path": list(self._path(node, today)),
            "members": v.members,
            "opened": v.opened,
            "closed": v.closed,
            "children": list(snap.children.get(node, ())),
        }

    def roots(self, principal: Principal) -> dict[str, Any]:
        """The roots a principal may see: every root for the admin, else its own unit."""
        if principal.is_admin:
            ids = list(self._tree.snapshot(self.today()).roots)
        else:
            ids = [principal.unit] if principal.unit and principal.unit in self._tree else []
        items = [{k: b[k] for k in ("id", "name", "level")} for b in (self.brief(i) for i in ids)]
        return {"items": items}

    async def metrics_of(self, nodes: list[str], period: Period) -> dict[str, dict[str, Value]]:
        """Every public metric of these nodes in one period.

        The Party Day figures of a quarter or a year cover only its months whose Party Day
        has come (`due_months`): the sums of the others are read and taken off."""
        due = due_months(self._rules, period, self.today())
        later = [m for m in period.months() if m not in due]
        sums = await self._repo.sums(nodes, [period, *later])
        name = str(period)
        trees = tree_metrics_of(self._tree, self._rules, nodes, period, due)
        out: dict[str, dict[str, Value]] = {}
        for n in nodes:
            values = sums.get((n, name), {})
            if later:
                values = _without_party_days(values, [sums.get((n, str(m)), {}) for m in later])
            out[n] = public_metrics(values, trees[n])
        return out

    async def summary(self, node: str, period: Period) -> dict[str, Any]:
        """All metrics of a node in a period."""
        metrics = await self.metrics_of([node], period)
        return {"node": self.brief(node), "period": str(period), "metrics": metrics[node]}

    async def children(
        self,
        node: str,
        period: Period,
        metric: str,
        limit: int,
        offset: int,
    ) -> dict[str, Any]:
        """The children in force at the period's end, ranked by `metric` (1 = best)."""
        if metric not in PUBLIC:
            raise InvalidQueryError("metric", f"unknown metric {metric!r}")
        snap = self._tree.snapshot(period.last_day)
        versions = {c: v for c in snap.children.get(node, ()) if (v := snap.version(c))}
        ids = [c for c, v in versions.items() if v.closed is None or v.closed > period.first_day]
        metrics = await self.metrics_of(ids, period)
        values = {c: metrics[c][metric] for c in ids}
        ranked = sorted(ids, key=lambda c: (values[c] is None, -(values[c] or 0), c))
        items: list[dict[str, Any]] = []
        for i, c in enumerate(ranked):
            value = values[c]
            same = bool(items) and items[-1]["value"] == value
            v = versions[c]
            items.append(
                {
                    "id": c,
                    "name": v.name,
                    "level": v.level,
                    "value": value,
                    "rank": items[-1]["rank"] if same else i + 1,
                    "metrics": metrics[c],
                }
            )
        return {
            "node": self.brief(node),
            "period": str(period),
            "metric": metric,
            **page(items, limit, offset),
        }

    async def completeness(
        self,
        node: str,
        month: Period,
        limit: int,
        offset: int,
    ) -> dict[str, Any]:
        """Expected, held, on time, late and missing branches of a month's Party Day."""
        snap = self._tree.snapshot(self._rules.party_day_date(month))
        held = await self._repo.party_days(node, month.first_day, month.last_day)
        result = completeness(snap.active_branches_under(node), held)

        def unit(u: str) -> dict[str, Any]:
            v = snap.version(u) or self._tree.current(u, snap.day)
            path = self._path(u, snap.day)
            return {
                "id": u,
                "name": v.name if v else u,
                "parent": path[-2] if len(path) > 1 else None,
                "path": list(path),
            }

        missing = [unit(u) for u in result.missing]
        late = [
            {**unit(h.unit), "reported_at": h.reported_at.isoformat()} for h in result.late_units
        ]
        unexpected = [
            {**unit(h.unit), "reported_at": h.reported_at.isoformat()}
            for h in result.unexpected_units
        ]
        return {
            "node": self.brief(node),
            "cycle": "party_day",
            "period": str(month),
            "deadline": self._rules.deadline(month).isoformat(),
            "expected": result.expected,
            "held": result.held,
            "on_time": result.on_time,
            "late": result.late,
            "missing": len(result.missing),
            "unexpected": result.unexpected,
            "missing_units": page(missing, limit, offset),
            "late_units": page(late, limit, offset),
            "unexpected_units": page(unexpected, limit, offset),
        }

    async def series(self, node: str, metric: str, first: Period, last: Period) -> dict[str, Any]:
        """A metric month by month from `first` to `last`."""
        if metric not in PUBLIC:
            raise InvalidQueryError("metric", f"unknown metric {metric!r}")
        if last < first:
            raise InvalidQueryError("to", "`to` is before `from`")
        months = month_range(first.months()[0], last.months()[-1])
        if len(months) > MAX_SERIES_MONTHS:
            raise InvalidQueryError("to", f"at most {MAX_SERIES_MONTHS} months in one series")
        sums = await self._repo.sums([node], months)
        points = [
            {
                "period": str(m),
                "value": public_metrics(
                    sums.get((node, str(m)), {}), tree_metrics(self._tree, self._rules, node, m)
                )[metric],
            }
            for m in months
        ]
        return {"node": self.brief(node), "metric": metric, "points": points}
