"""The quarterly feedback of every unit, computed from the figures of a walked tree.

For each unit: its metrics for the quarter and the previous one, the change, its rank
among its siblings for a few headline metrics (competition ranking, ties share, 1 = best),
its own monthly Party Day completeness, the monthly completeness of each child, and the
children that need attention (a missing or late Party Day report in any month).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from huibao_contracts.metrics import PUBLIC
from huibao_contracts.periods import Period
from huibao_scheduler.domain.units import Completeness, Metrics, Tree, Unit

RANKED: tuple[str, ...] = (
    "party_day.on_time",
    "party_day.attendance_rate",
    "lesson.delivered",
    "training.participants",
)
"""Metrics a unit is ranked by among its siblings."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MonthFigures(_Frozen):
    """Party Day completeness of one month."""

    period: str
    expected: int
    held: int
    on_time: int
    late: int
    missing: int


class Rank(_Frozen):
    """Where a unit stands among its siblings for one metric."""

    metric: str
    rank: int | None = Field(description="1 = best; None when the unit has no value.")
    of: int = Field(description="Siblings ranked, the unit included.")


class ChildFigures(_Frozen):
    """A child's Party Day completeness, month by month and in total."""

    id: str
    name: str
    level: str
    months: list[MonthFigures]
    on_time: int
    late: int
    missing: int


class Attention(_Frozen):
    """A child that needs attention and why."""

    id: str
    name: str
    missing: int
    late: int
    reasons: list[str]


class FeedbackReport(_Frozen):
    """The quarterly feedback of one unit, as stored, served and published."""

    unit: str
    name: str
    level: str
    parent: str | None
    quarter: str
    previous_quarter: str
    issued_at: dt.datetime
    metrics: dict[str, float | None]
    previous: dict[str, float | None]
    change: dict[str, float | None]
    ranks: list[Rank]
    months: list[MonthFigures]
    children: list[ChildFigures]
    attention: list[Attention]


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


def month_figures(tree: Tree, unit: str, months: Sequence[Period]) -> list[MonthFigures]:
    """A unit's Party Day completeness for each month it has figures for."""
    out = []
    for month in months:
        metrics = tree.figures.get((unit, str(month)))
        if metrics is not None:
            c = Completeness.from_metrics(str(month), metrics)
            out.append(
                MonthFigures.model_construct(  # trusted ints: skip re-validation
                    period=c.period,
                    expected=c.expected,
                    held=c.held,
                    on_time=c.on_time,
                    late=c.late,
                    missing=c.missing,
                )
            )
    return out


def child_figures(tree: Tree, child: Unit, months: Sequence[Period]) -> ChildFigures:
    """A child's completeness by month and summed over the quarter."""
    rows = month_figures(tree, child.id, months)
    return ChildFigures.model_construct(
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
                Attention(id=c.id, name=c.name, missing=c.missing, late=c.late, reasons=reasons)
            )
    return sorted(out, key=lambda a: (-a.missing, -a.late, a.id))


def _public(metrics: Metrics) -> dict[str, float | None]:
    return {name: metrics.get(name) for name in PUBLIC}


def build_reports(tree: Tree, quarter: Period, issued_at: dt.datetime) -> list[FeedbackReport]:
    """The feedback report of every unit of `tree` for `quarter`.

    `tree.figures` must hold, for every unit, its metrics for the quarter, the previous
    quarter and each month of the quarter (as `RollupClient.walk` collects them).
    """
    q, prev, months = str(quarter), str(quarter.previous()), quarter.months()
    ranks: dict[str, list[Rank]] = {}
    for group in [tree.roots, *tree.children.values()]:
        for metric in RANKED:
            values = {u: tree.figures.get((u, q), {}).get(metric) for u in group}
            for uid, rank in competition_ranks(values).items():
                ranks.setdefault(uid, []).append(
                    Rank.model_construct(metric=metric, rank=rank, of=len(group))
                )
    reports = []
    for unit in tree.units.values():
        current = tree.figures.get((unit.id, q), {})
        before = tree.figures.get((unit.id, prev), {})
        kids = [
            child_figures(tree, tree.units[c], months)
            for c in sorted(tree.children.get(unit.id, []))
        ]
        reports.append(
            FeedbackReport(
                unit=unit.id,
                name=unit.name,
                level=unit.level,
                parent=unit.parent,
                quarter=q,
                previous_quarter=prev,
                issued_at=issued_at,
                metrics=_public(current),
                previous=_public(before),
                change=change(current, before),
                ranks=ranks.get(unit.id, []),
                months=month_figures(tree, unit.id, months),
                children=kids,
                attention=attention(kids),
            )
        )
    return reports
