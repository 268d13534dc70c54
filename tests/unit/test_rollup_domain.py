"""The rollup arithmetic, pure: attribution, differences, on time vs late, duplicates, tree."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from huibao_contracts.calendar import CalendarRules
from huibao_contracts.orgunits import OrgUnitChange
from huibao_contracts.periods import Period
from huibao_rollup.domain import contribution as contrib
from huibao_rollup.domain.aggregation import Fold, Outcome, replaced, totals
from huibao_rollup.domain.completeness import Held, completeness, due_months
from huibao_rollup.domain.model import ActivityEvent
from huibao_rollup.domain.tree import Tree, UnitVersion
from huibao_rollup.domain.views import public_metrics, tree_metrics

RULES = CalendarRules()
RECEIVED = dt.datetime(2026, 6, 26, 12, tzinfo=dt.UTC)
PD = "huibao.party_day.held.v1"


def unit(
    uid: str,
    level: str,
    parent: str | None,
    members: int = 0,
    seq: int = 1,
    effective: dt.date | None = None,
    kind: str = "upsert",
    **kw: Any,
) -> UnitVersion:
    u = {"id": uid, "name": uid, "level": level, "parent": parent, "members": members, **kw}
    change = OrgUnitChange.model_validate(
        {"seq": seq, "kind": kind, "effective": effective, "unit": u, "path": [uid]}
    )
    return UnitVersion.of(change)


def city() -> Tree:
    tree = Tree()
    for v in [
        unit("c", "city", None),
        unit("k1", "county", "c"),
        unit("k2", "county", "c"),
        unit("t1", "township", "k1"),
        unit("t2", "township", "k2"),
        unit("b1", "branch", "t1", 30),
        unit("b2", "branch", "t1", 20),
        unit("b3", "branch", "t2", 10),
    ]:
        tree.apply(v)
    return tree


def event(
    unit_id: str,
    data: dict[str, Any],
    *,
    type_: str = PD,
    id_: str = "e1",
    time: dt.datetime | None = None,
    shard: int = 0,
) -> ActivityEvent:
    base = {"activity_id": "a1", "revision": 1, "date": "2026-06-26"}
    return ActivityEvent(
        source="/t",
        id=id_,
        type=type_,
        unit=unit_id,
        time=time,
        received=RECEIVED,
        data={**base, **data},
        shard=shard,
    )


def cells(fold: Fold) -> dict[tuple[str, str, str], Decimal]:
    out: dict[tuple[str, str, str], Decimal] = {}
    for (node, period, metric, _), v in fold.deltas.changed():
        out[(node, period, metric)] = out.get((node, period, metric), Decimal(0)) + v
    return out


def test_a_fact_counts_for_every_ancestor_in_month_quarter_and_year() -> None:
    fold = Fold(RULES, city(), {})
    assert fold.apply(event("b1", {"attendees": 25, "members": 30})) is Outcome.APPLIED
    got = cells(fold)
    for node in ("c", "k1", "t1", "b1"):
        for period in ("2026-06", "2026-Q2", "2026"):
            assert got[(node, period, "party_day.held")] == 1
            assert got[(node, period, "party_day.attendees")] == 25
    assert not any(n in ("k2", "t2", "b2", "b3") for n, _, _ in got)
    assert fold.changed["a1"].path == ("c", "k1", "t1", "b1")


def test_correction_and_retraction_by_difference() -> None:
    tree = city()
    fold = Fold(RULES, tree, {})
    fold.apply(event("b1", {"attendees": 25, "members": 30}))
    stored = dict(fold.facts)
    fold = Fold(RULES, tree, stored)
    assert (
        fold.apply(
            event(
                "b1",
                {"revision": 2, "attendees": 28, "members": 30, "date": "2026-07-26"},
                id_="e2",
            )
        )
        is Outcome.CORRECTED
    )
    got = cells(fold)
    assert got[("c", "2026-06", "party_day.attendees")] == -25
    assert got[("c", "2026-07", "party_day.attendees")] == 28
    assert got[("c", "2026-06", "party_day.held")] == -1
    assert ("c", "2026", "party_day.held") not in got  # same year: the difference is nothing
    assert got[("c", "2026", "party_day.attendees")] == 3
    stored = dict(fold.facts)
    fold = Fold(RULES, tree, stored)
    assert (
        fold.apply(event("b1", {"revision": 3, "retracted": True, "date": "2026-07-26"}, id_="e3"))
        is Outcome.CORRECTED
    )
    got = cells(fold)
    assert got[("b1", "2026-07", "party_day.attendees")] == -28
    assert totals(fold.facts.values()) == {}


def test_duplicates_and_stale_revisions_change_nothing() -> None:
    tree = city()
    fold = Fold(RULES, tree, {})
    fold.apply(event("b1", {"revision": 2, "attendees": 25, "members": 30}))
    before = cells(fold)
    assert (
        fold.apply(event("b1", {"revision": 2, "attendees": 25, "members": 30}))
        is Outcome.DUPLICATE
    )
    assert (
        fold.apply(event("b1", {"revision": 1, "attendees": 1, "members": 30}, id_="old"))
        is Outcome.DUPLICATE
    )
    assert cells(fold) == before


@pytest.mark.parametrize(
    ("time", "on_time"),
    [
        (dt.datetime(2026, 6, 29, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=8))), True),
        (dt.datetime(2026, 6, 30, 0, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))), True),
        (dt.datetime(2026, 6, 30, 0, 0, 1, tzinfo=dt.timezone(dt.timedelta(hours=8))), False),
        (dt.datetime(2026, 6, 29, 16, 0, 1, tzinfo=dt.UTC), False),
    ],
)
def test_on_time_against_the_deadline(time: dt.datetime, on_time: bool) -> None:
    fold = Fold(RULES, city(), {})
    fold.apply(event("b1", {"attendees": 1, "members": 2}, time=time))
    got = cells(fold)
    assert got.get(("b1", "2026-06", "party_day.on_time"), 0) == (1 if on_time else 0)
    assert got.get(("b1", "2026-06", "party_day.late"), 0) == (0 if on_time else 1)


def test_the_first_report_decides_lateness_of_later_corrections() -> None:
    tree = city()
    fold = Fold(RULES, tree, {})
    fold.apply(event("b1", {"attendees": 1, "members": 2}, time=RECEIVED))
    late = dt.datetime(2026, 7, 5, tzinfo=dt.UTC)
    fold.apply(event("b1", {"revision": 2, "attendees": 2, "members": 2}, time=late))
    assert fold.facts["a1"].on_time is True


def test_other_activity_types_contribute_their_fields() -> None:
    fold = Fold(RULES, city(), {})
    fold.apply(
        event(
            "t1",
            {"activity_id": "tr", "participants": 30, "hours": 1.5, "target_group": "secretaries"},
            type_="huibao.training.held.v1",
        )
    )
    fold.apply(
        event(
            "t1",
            {"activity_id": "tr2", "participants": 1, "hours": 0.1, "target_group": "secretaries"},
            type_="huibao.training.held.v1",
        )
    )
    fold.apply(event("k1", {"activity_id": "fb", "items": 4}, type_="huibao.feedback.collected.v1"))
    got = cells(fold)
    assert got[("c", "2026-06", "training.sessions")] == 2
    assert got[("c", "2026-06", "training.hours")] == Decimal("1.6")
    assert got[("k1", "2026-Q2", "feedback.collected")] == 4
    assert ("t1", "2026-06", "feedback.collected") not in got


def test_tree_versions_move_a_subtree_from_the_effective_date() -> None:
    tree = city()
    moved = unit("t1", "township", "k2", seq=9, effective=dt.date(2026, 7, 1), kind="move")
    assert tree.apply(moved)
    assert not tree.apply(moved)  # a replay changes nothing
    assert tree.path_on("b1", dt.date(2026, 6, 30)) == ("c", "k1", "t1", "b1")
    assert tree.path_on("b1", dt.date(2026, 7, 1)) == ("c", "k2", "t1", "b1")
    assert tree.snapshot(dt.date(2026, 6, 26)).branches["k1"] == 2
    assert tree.snapshot(dt.date(2026, 7, 26)).branches["k2"] == 3
    q3 = tree_metrics(tree, RULES, "k2", Period.parse("2026-Q3"))
    assert q3["party_day.expected"] == 9  # three branches in each of three months
    assert q3["orgunits.branches"] == 3
    assert q3["members.total"] == 60


def test_a_merged_parent_hands_its_children_over() -> None:
    tree = city()
    merged = unit(
        "t1",
        "township",
        "k1",
        seq=9,
        effective=dt.date(2026, 7, 1),
        kind="merge",
        closed=dt.date(2026, 7, 1),
    )
    tree.apply(dataclasses.replace(merged, merged_into="t2"))
    assert tree.path_on("b1", dt.date(2026, 7, 2)) == ("c", "k2", "t2", "b1")
    assert tree.path_on("b1", dt.date(2026, 6, 2)) == ("c", "k1", "t1", "b1")


def test_completeness_and_ratios() -> None:
    at = dt.datetime(2026, 6, 27, tzinfo=dt.UTC)
    result = completeness(
        ["b1", "b2", "b3"], [Held("b1", True, at), Held("b1", False, at), Held("b3", False, at)]
    )
    assert (result.expected, result.held, result.on_time, result.late) == (3, 2, 1, 1)
    assert result.missing == ["b2"]
    assert [h.unit for h in result.late_units] == ["b3"]
    m = public_metrics(
        {"party_day.attendees": Decimal(9), "party_day.members": Decimal(12)},
        {"party_day.expected": 3},
    )
    assert m["party_day.attendance_rate"] == 0.75
    assert m["feedback.resolution_rate"] is None
    assert m["party_day.expected"] == 3


SH = dt.timezone(dt.timedelta(hours=8))


@pytest.mark.parametrize(
    ("time", "received", "counted_at"),
    [
        # a trustworthy `time` decides, whatever the receipt
        (dt.datetime(2026, 6, 26, 20, tzinfo=SH), dt.datetime(2026, 7, 2, tzinfo=SH), None),
        # `time` before the activity's own date: the receipt time decides
        (
            dt.datetime(2026, 6, 25, 23, 59, tzinfo=SH),
            dt.datetime(2026, 7, 2, tzinfo=SH),
            dt.datetime(2026, 7, 2, tzinfo=SH),
        ),
        # neither can precede the date: clamped to its start
        (None, dt.datetime(2026, 6, 25, tzinfo=SH), dt.datetime(2026, 6, 26, tzinfo=SH)),
    ],
)
def test_a_report_recorded_before_its_own_date_counts_from_its_receipt(
    time: dt.datetime | None, received: dt.datetime, counted_at: dt.datetime | None
) -> None:
    got = contrib.reported_instant(RULES, dt.date(2026, 6, 26), time, received)
    assert got == (counted_at or time)
    fold = Fold(RULES, city(), {})
    e = dataclasses.replace(
        event("b1", {"attendees": 1, "members": 2}, time=time), received=received
    )
    fold.apply(e)
    assert fold.facts["a1"].first_reported_at == got
    assert fold.facts["a1"].on_time is (got <= RULES.deadline(Period.parse("2026-06")))


def test_a_party_day_counts_where_its_branch_stands_on_the_party_day() -> None:
    tree = city()
    tree.apply(unit("b1", "branch", "t2", 30, seq=5, effective=dt.date(2026, 6, 23), kind="move"))
    tree.apply(unit("b2", "branch", "t1", 20, seq=6, closed=dt.date(2026, 6, 20)))
    tree.apply(unit("b4", "branch", "t1", 5, seq=7, opened=dt.date(2026, 6, 28)))
    fold = Fold(RULES, tree, {})
    fold.apply(event("b1", {"activity_id": "x1", "date": "2026-06-20", "members": 30}))
    fold.apply(event("b2", {"activity_id": "x2", "date": "2026-06-10", "members": 20}))
    fold.apply(event("b4", {"activity_id": "x4", "date": "2026-06-28", "members": 5}))
    got = cells(fold)
    # reported on the 20th under t1, moved to t2 on the 23rd: held under t2, where expected
    assert fold.facts["x1"].path == ("c", "k2", "t2", "b1")
    assert got[("t2", "2026-06", "party_day.held")] == 1
    assert ("t1", "2026-06", "party_day.held") not in got
    # closed before, or opened after, the Party Day: not expected, counted as unexpected
    assert got[("t1", "2026-06", "party_day.unexpected")] == 2
    assert got[("t1", "2026-06", "party_day.members")] == 25
    assert tree_metrics(tree, RULES, "t1", Period.parse("2026-06"))["party_day.expected"] == 0
    assert tree_metrics(tree, RULES, "t2", Period.parse("2026-06"))["party_day.expected"] == 2


def test_replaced_follows_the_tree_and_leaves_an_unchanged_fact_alone() -> None:
    tree = city()
    fold = Fold(RULES, tree, {})
    fold.apply(event("b1", {"attendees": 4, "members": 30}))
    fact = fold.facts["a1"]
    assert replaced(RULES, tree, fact) is fact
    tree.apply(unit("b1", "branch", "t1", 30, seq=9, closed=dt.date(2026, 6, 1)))
    now = replaced(RULES, tree, fact)
    assert now.path == fact.path
    assert now.contribution == {
        "party_day.unexpected": 1,
        "party_day.attendees": 4,
        "party_day.members": 30,
    }


def test_completeness_lists_unexpected_reports_apart() -> None:
    at = dt.datetime(2026, 6, 27, tzinfo=dt.UTC)
    result = completeness(["b1", "b2"], [Held("b1", True, at), Held("b9", True, at, False)])
    assert (result.expected, result.held, result.unexpected, result.missing) == (2, 1, 1, ["b2"])
    assert [h.unit for h in result.unexpected_units] == ["b9"]


@pytest.mark.parametrize(
    ("period", "today", "months"),
    [
        ("2026-Q2", dt.date(2026, 6, 25), ["2026-04", "2026-05"]),
        ("2026-Q2", dt.date(2026, 6, 26), ["2026-04", "2026-05", "2026-06"]),
        ("2026", dt.date(2026, 3, 1), ["2026-01", "2026-02"]),
        ("2026-Q3", dt.date(2026, 6, 30), []),
        ("2026-12", dt.date(2026, 12, 1), ["2026-12"]),  # a month counts itself
    ],
)
def test_a_period_counts_the_months_whose_party_day_has_come(
    period: str, today: dt.date, months: list[str]
) -> None:
    assert [str(m) for m in due_months(RULES, Period.parse(period), today)] == months
