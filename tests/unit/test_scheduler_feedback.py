"""Quarterly feedback computations: change, rank among siblings, completeness, attention."""

import datetime as dt
from typing import Any

from huibao_contracts.periods import Period
from huibao_scheduler.domain.feedback import (
    attention,
    build_reports,
    change,
    child_figures,
    competition_ranks,
)
from huibao_scheduler.domain.units import Tree, Unit

Q3 = Period.parse("2026-Q3")
ISSUED = dt.datetime(2026, 10, 10, tzinfo=dt.UTC)


def figures(
    expected: int, held: int, on_time: int, late: int, **more: float | None
) -> dict[str, float | None]:
    return {
        "party_day.expected": expected,
        "party_day.held": held,
        "party_day.on_time": on_time,
        "party_day.late": late,
        **{k.replace("_", ".", 1): v for k, v in more.items()},
    }


def small_tree() -> Tree:
    """A county with two townships; township A has two branches, B one."""
    tree = Tree()
    county = Unit("c1", "清源县", "county", None, ("c1",))
    ta = Unit("ta", "城关镇", "township", "c1", ("c1", "ta"))
    tb = Unit("tb", "新丰镇", "township", "c1", ("c1", "tb"))
    b1 = Unit("b1", "一村支部", "branch", "ta", ("c1", "ta", "b1"))
    b2 = Unit("b2", "二村支部", "branch", "ta", ("c1", "ta", "b2"))
    b3 = Unit("b3", "三村支部", "branch", "tb", ("c1", "tb", "b3"))
    month = {"b1": (1, 1, 1, 0), "b2": (1, 0, 0, 0), "b3": (1, 1, 0, 1)}
    for unit in (county, ta, tb, b1, b2, b3):
        tree.add(unit)
    for m in ("2026-07", "2026-08", "2026-09"):
        for b, f in month.items():
            tree.add(tree.units[b], m, figures(*f))
        tree.add(ta, m, figures(2, 1, 1, 0))
        tree.add(tb, m, figures(1, 1, 0, 1))
        tree.add(county, m, figures(3, 2, 1, 1))
    q = {
        "b1": (3, 3, 3, 0, 5),
        "b2": (3, 0, 0, 0, 1),
        "b3": (3, 3, 0, 3, 5),
        "ta": (6, 3, 3, 0, 6),
        "tb": (3, 3, 0, 3, 5),
        "c1": (9, 6, 3, 3, 11),
    }
    for uid, (e, h, o, late, lessons) in q.items():
        tree.add(tree.units[uid], "2026-Q3", figures(e, h, o, late, lesson_delivered=lessons))
        tree.add(tree.units[uid], "2026-Q2", figures(e, h, o, late, lesson_delivered=lessons - 1))
    return tree


def by_period(tree: Tree, unit: str) -> dict[str, dict[str, float | None]]:
    return {p: dict(m) for (u, p), m in tree.figures.items() if u == unit}


def test_competition_ranking_shares_ties_and_leaves_none_unranked() -> None:
    assert competition_ranks({"a": 5, "b": 7, "c": 5, "d": 1, "e": None}) == {
        "b": 1,
        "a": 2,
        "c": 2,
        "d": 4,
        "e": None,
    }
    assert competition_ranks({}) == {}


def test_change_is_current_minus_previous_or_none() -> None:
    got = change({"party_day.held": 5, "party_day.attendance_rate": None}, {"party_day.held": 3})
    assert got["party_day.held"] == 2
    assert got["party_day.attendance_rate"] is None
    assert got["lesson.delivered"] is None


def test_child_figures_and_attention_worst_first() -> None:
    tree = small_tree()
    months = Q3.months()
    kids = [child_figures(tree.units[b], by_period(tree, b), months) for b in ("b1", "b2", "b3")]
    assert [(k.id, k.on_time, k.late, k.missing) for k in kids] == [
        ("b1", 3, 0, 0),
        ("b2", 0, 0, 3),
        ("b3", 0, 3, 0),
    ]
    flagged = attention(kids)
    assert [a.id for a in flagged] == ["b2", "b3"]
    assert flagged[0].reasons == [f"2026-0{m} 未上报 1 个" for m in (7, 8, 9)]


def test_build_reports_for_every_unit() -> None:
    reports = {r.unit: r for r in build_reports(small_tree(), Q3, ISSUED)}
    assert set(reports) == {"c1", "ta", "tb", "b1", "b2", "b3"}
    ta = reports["ta"]
    assert ta.quarter == "2026-Q3"
    assert ta.previous_quarter == "2026-Q2"
    assert ta.metrics["party_day.held"] == 3
    assert ta.change["lesson.delivered"] == 1
    ranks = {r.metric: (r.rank, r.of) for r in ta.ranks}
    assert ranks["party_day.on_time"] == (1, 2)
    assert ranks["lesson.delivered"] == (1, 2)
    assert [c.id for c in ta.children] == ["b1", "b2"]
    assert [a.id for a in ta.attention] == ["b2"]
    assert [(m.period, m.missing) for m in ta.months] == [
        ("2026-07", 1),
        ("2026-08", 1),
        ("2026-09", 1),
    ]
    b2 = reports["b2"]
    assert {r.metric: r.rank for r in b2.ranks}["party_day.on_time"] == 2
    assert b2.children == []
    root = reports["c1"]
    assert root.parent is None
    assert {r.metric: (r.rank, r.of) for r in root.ranks}["party_day.on_time"] == (1, 1)
    assert [a.id for a in root.attention] == ["ta", "tb"]


def test_fast_construction_equals_model_construct() -> None:
    from huibao_contracts.feedback import MonthFigures
    from huibao_scheduler.domain.feedback import _construct

    values: dict[str, Any] = {
        "period": "2026-07",
        "expected": 3,
        "held": 2,
        "on_time": 1,
        "late": 1,
        "missing": 1,
    }
    fast = _construct(MonthFigures, **values)
    slow = MonthFigures.model_construct(**values)
    assert fast == slow
    assert fast.model_dump_json() == slow.model_dump_json()
    assert fast.model_fields_set == slow.model_fields_set


def test_reports_are_valid_contract_models() -> None:
    from huibao_contracts.feedback import FeedbackReport

    for report in build_reports(small_tree(), Q3, ISSUED):
        again = FeedbackReport.model_validate_json(report.model_dump_json())
        assert again.model_dump(mode="json") == report.model_dump(mode="json")
