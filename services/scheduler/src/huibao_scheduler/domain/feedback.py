"""The quarterly feedback of every unit, computed from the figures of a walked tree.

For each unit: its metrics for the quarter and the previous one, the change, its rank
among its siblings for a few headline metrics (competition ranking, ties share, 1 = best),
its own monthly Party Day completeness, the monthly completeness of each child, and the
children that need attention (a missing or late Party Day report in any month). The
report models are contracts (`huibao_contracts.feedback`): they are published.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from huibao_contracts.feedback import Attention, ChildFigures, FeedbackReport, MonthFigures, Rank
from huibao_contracts.metrics import PUBLIC
from huibao_contracts.periods import Period
from huibao_scheduler.domain.units import Metrics, Tree, Unit

RANKED: tuple[str, ...] = (
    "party_day.on_time",
    "party_day.attendance_rate",
    "lesson.delivered",
    "training.participants",
)
"""Metrics a unit is ranked by among its siblings."""


ByPeriod = Mapping[str, Metrics]
"""A unit's metrics by period (the quarter, the previous one and each month)."""

_BRANCH = "branch"
_PUBLIC_KEYS = frozenset(PUBLIC)
_M = TypeVar("_M", bound=BaseModel)


def _construct(cls: type[_M], **values: Any) -> _M:
    """`cls.model_construct(**values)` for trusted values naming every field, minus its
    per-field bookkeeping: what it sets, set directly (about 5 times faster, and a round
    builds some 500,000 of these). A unit test checks both give equal models."""
    model = cls.__new__(cls)
    object.__setattr__(model, "__dict__", values)
    object.__setattr__(model, "__pydantic_fields_set__", set(values))
    object.__setattr__(model, "__pydantic_extra__", None)
    object.__setattr__(model, "__pydantic_private__", None)
    return model


def competition_ranks(values: dict[str, float | None]) -> dict[str, int | None]:
    """Rank ids by value, highest first; ties share a rank (1, 2, 2, 4); None is unranked."""
    out: dict[str, int | None] = {k: None for k, v in values.items() if v is None}
    ranked = sorted(((v, k) for k, v in values.items() if v is not None), key=lambda p: -p[0])
    rank, previous = 0, None
    for index, (value, key) in enumerate(ranked):
        if value != previous:
            rank, previous = index + 1, value
        out[key] = rank
    return out


def change(current: Metrics, previous: Metrics) -> dict[str, float | None]:
    """Current minus previous for every public metric (None when either is None)."""
    out: dict[str, float | None] = {}
    for name in PUBLIC:
        now, before = current.get(name), previous.get(name)
        out[name] = None if now is None or before is None else round(now - before, 6)
    return out


def month_figures(figures: ByPeriod, months: Sequence[Period | str]) -> list[MonthFigures]:
    """A unit's Party Day completeness for each month it has figures for."""
    out = []
    for month in map(str, months):
        metrics = figures.get(month)
        if metrics is not None:
            expected = int(metrics.get("party_day.expected") or 0)
            held = int(metrics.get("party_day.held") or 0)
            out.append(
                _construct(  # trusted ints: skip re-validation
                    MonthFigures,
                    period=month,
                    expected=expected,
                    held=held,
                    on_time=int(metrics.get("party_day.on_time") or 0),
                    late=int(metrics.get("party_day.late") or 0),
                    missing=max(expected - held, 0),
                )
            )
    return out


def child_figures(child: Unit, figures: ByPeriod, months: Sequence[Period | str]) -> ChildFigures:
    """A child's completeness by month and summed over the quarter."""
    rows = month_figures(figures, months)
    return _construct(
        ChildFigures,
        id=child.id,
        name=child.name,
        level=child.level,
        months=rows,
        on_time=sum(r.on_time for r in rows),
        late=sum(r.late for r in rows),
        missing=sum(r.missing for r in rows),
    )


def attention(children: Iterable[ChildFigures]) -> list[Attention]:
    """Children with a missing or late report in any month, worst first."""
    out = []
    for c in children:
        reasons = [f"{r.period} 未上报 {r.missing} 个" for r in c.months if r.missing]
        reasons += [f"{r.period} 逾期上报 {r.late} 个" for r in c.months if r.late]
        if reasons:
            out.append(
                _construct(
                    Attention, id=c.id, name=c.name, missing=c.missing, late=c.late, reasons=reasons
                )
            )
    return sorted(out, key=lambda a: (-a.missing, -a.late, a.id))


def _public(metrics: Metrics) -> dict[str, float | None]:
    if isinstance(metrics, dict) and metrics.keys() == _PUBLIC_KEYS:
        return metrics  # the rollup answers every public metric: take its dict as it is
    return {name: metrics.get(name) for name in PUBLIC}


class RankCache:
    """Equal ranks shared as one (frozen) value: a round builds millions of them."""

    def __init__(self) -> None:
        self._interned: dict[tuple[str, int | None, int], Rank] = {}

    def group(self, quarter_figures: Mapping[str, Metrics]) -> dict[str, list[Rank]]:
        """Every unit's rank within one group of siblings (id → its quarter's metrics)."""
        ranks: dict[str, list[Rank]] = {uid: [] for uid in quarter_figures}
        size = len(quarter_figures)
        for metric in RANKED:
            values = {u: m.get(metric) for u, m in quarter_figures.items()}
            for uid, rank in competition_ranks(values).items():
                key = (metric, rank, size)
                if key not in self._interned:
                    self._interned[key] = _construct(Rank, metric=metric, rank=rank, of=size)
                ranks[uid].append(self._interned[key])
        return ranks


@dataclass(frozen=True, slots=True)
class Member:
    """A unit as its parent's listings showed it: its figures by period, its sibling ranks."""

    unit: Unit
    figures: ByPeriod
    ranks: list[Rank]
    own: ChildFigures


@dataclass(frozen=True, slots=True)
class FamilyReports:
    """What one parent's listings give: reports to issue now and the children to visit."""

    reports: list[FeedbackReport]
    to_visit: list[Member]


class Round:
    """The quarterly feedback round, one family (a parent and its children) at a time.

    A unit's report needs its own figures and its rank among its siblings (both from its
    parent's children listings) and its children's monthly figures (from its own listings).
    So `family` issues the parent's report, the reports of its branch children (which have
    no children) and hands back its other children to visit in turn: the round never holds
    more than the families in progress.
    """

    def __init__(self, quarter: Period, issued_at: dt.datetime) -> None:
        self.quarter = str(quarter)
        self.previous = str(quarter.previous())
        self.months = [str(m) for m in quarter.months()]
        self.periods = [self.quarter, self.previous, *self.months]
        self._issued_at = issued_at
        self._ranks = RankCache()

    def members(self, units: Sequence[tuple[Unit, ByPeriod]]) -> list[Member]:
        """`units` (siblings, or the roots) with their ranks among themselves."""
        ranks = self._ranks.group({u.id: f.get(self.quarter, {}) for u, f in units})
        return [Member(u, f, ranks[u.id], child_figures(u, f, self.months)) for u, f in units]

    def family(
        self, parent: Member | None, children: Sequence[tuple[Unit, ByPeriod]]
    ) -> FamilyReports:
        """The reports `parent`'s listings complete (None: `children` are the roots)."""
        members = self.members(children)
        reports = []
        if parent is not None:
            kids = sorted((m.own for m in members), key=lambda c: c.id)
            reports.append(self.report(parent, kids))
        to_visit = []
        for m in members:
            if m.unit.level == _BRANCH:
                reports.append(self.report(m, []))
            else:
                to_visit.append(m)
        return FamilyReports(reports, to_visit)

    def report(self, member: Member, kids: list[ChildFigures]) -> FeedbackReport:
        """One unit's report, from its figures, its ranks and its children's figures."""
        unit, figures = member.unit, member.figures
        current = figures.get(self.quarter, {})
        before = figures.get(self.previous, {})
        return _construct(
            FeedbackReport,
            unit=unit.id,
            name=unit.name,
            level=unit.level,
            parent=unit.parent,
            quarter=self.quarter,
            previous_quarter=self.previous,
            issued_at=self._issued_at,
            metrics=_public(current),
            previous=_public(before),
            change=change(current, before),
            ranks=member.ranks,
            months=member.own.months,
            children=kids,
            attention=attention(kids),
        )


def build_reports(tree: Tree, quarter: Period, issued_at: dt.datetime) -> list[FeedbackReport]:
    """The feedback report of every unit of `tree` for `quarter` (walk order, family by family).

    `tree.figures` must hold, for every unit, its metrics for the quarter, the previous
    quarter and each month of the quarter. The figures are trusted (they come from the
    rollup), so the models are constructed without re-validation. The scheduler streams the
    same `Round` over the rollup's listings instead of holding a tree.
    """
    issuing = Round(quarter, issued_at)

    def listed(uid: str) -> tuple[Unit, ByPeriod]:
        unit = tree.units[uid]
        return unit, {
            p: tree.figures[(uid, p)] for p in issuing.periods if (uid, p) in tree.figures
        }

    reports: list[FeedbackReport] = []
    stack: list[Member | None] = [None]
    while stack:
        parent = stack.pop()
        kids = tree.roots if parent is None else tree.children.get(parent.unit.id, [])
        done = issuing.family(parent, [listed(k) for k in kids])
        reports += done.reports
        stack += reversed(done.to_visit)
    return reports
