"""Registry rules of reporting: imports (parents, cycles, levels, scope) and dated changes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from huibao_contracts.orgunits import OrgUnit
from huibao_contracts.rejects import FieldError, Reason
from huibao_reporting.domain.registry import (
    PathError,
    Placement,
    RegistryView,
    UnitRecord,
    record_of,
)
from huibao_reporting.domain.registry_changes import (
    Change,
    import_changes,
    plan_close,
    plan_merge,
    plan_move,
)
from huibao_reporting.domain.registry_rules import ImportKind, ImportPlan, plan_import

D = dt.date


def unit(id: str, level: str, parent: str | None = None, **kw: Any) -> OrgUnit:
    return OrgUnit(id=id, name=f"单位{id}", level=level, parent=parent, **kw)  # type: ignore[arg-type]


def tree() -> list[OrgUnit]:
    return [
        unit("c", "city"),
        unit("k1", "county", "c"),
        unit("k2", "county", "c"),
        unit("t1", "township", "k1"),
        unit("t2", "township", "k2"),
        unit("b1", "branch", "t1", members=30),
        unit("b2", "branch", "t1", members=20),
    ]


def view_of(units: list[OrgUnit]) -> RegistryView:
    return RegistryView(record_of(u) for u in units)


def errors(result: object) -> list[tuple[str, Reason]]:
    assert isinstance(result, list), result
    return [(e.field, e.reason) for e in result if isinstance(e, FieldError)]


def test_import_accepts_parents_in_any_order_and_plans_parents_first() -> None:
    units = list(reversed(tree()))
    plan = plan_import(units, RegistryView())
    assert isinstance(plan, ImportPlan)
    order = [p.unit.id for p in plan.units]
    assert order.index("c") < order.index("k1") < order.index("t1") < order.index("b1")
    paths = {p.unit.id: p.path for p in plan.units}
    assert paths["b1"] == ("c", "k1", "t1", "b1")
    assert plan.count(ImportKind.CREATED) == 7


def test_reimport_counts_unchanged_and_updated() -> None:
    stored = view_of(tree())
    changed = [*tree()[:-1], unit("b2", "branch", "t1", members=21)]
    plan = plan_import(changed, stored)
    assert isinstance(plan, ImportPlan)
    assert (
        plan.count(ImportKind.CREATED),
        plan.count(ImportKind.UPDATED),
        plan.count(ImportKind.UNCHANGED),
    ) == (0, 1, 6)


def test_unknown_parent_is_reported_with_its_index() -> None:
    result = plan_import([unit("c", "city"), unit("k1", "county", "nowhere")], RegistryView())
    assert errors(result) == [("[1].parent", Reason.UNKNOWN_UNIT)]


def test_levels_must_descend() -> None:
    result = plan_import(
        [unit("c", "city"), unit("b", "branch", "c"), unit("k", "county", "b")], RegistryView()
    )
    assert errors(result) == [("[2].level", Reason.WRONG_LEVEL)]


def test_a_city_cannot_have_a_parent() -> None:
    result = plan_import([unit("c", "city"), unit("c2", "city", "c")], RegistryView())
    assert errors(result) == [("[1].level", Reason.WRONG_LEVEL)]


def test_a_cycle_through_stored_units_is_refused() -> None:
    stored = view_of([unit("c", "city"), unit("k1", "county", "c"), unit("t1", "township", "k1")])
    # re-parent k1 under its own child t1: the levels are wrong and the parents loop
    result = plan_import([unit("k1", "county", "t1")], stored)
    found = errors(result)
    assert ("[0].level", Reason.WRONG_LEVEL) in found
    assert ("[0].parent", Reason.INVALID_FIELD) in found


def test_a_pure_cycle_is_refused() -> None:
    stored = view_of([unit("a", "township", "b"), unit("b", "township", "a")])
    with pytest.raises(PathError, match="cycle"):
        stored.path_on("a")


def test_duplicate_ids_and_level_changes_are_refused() -> None:
    stored = view_of(tree())
    result = plan_import([unit("c", "city"), unit("c", "city"), unit("t1", "county", "c")], stored)
    found = errors(result)
    assert ("[1].id", Reason.INVALID_FIELD) in found
    assert ("[2].level", Reason.INVALID_FIELD) in found


def test_scope_limits_an_import_to_the_token_subtree() -> None:
    stored = view_of(tree())
    ok = plan_import([unit("b3", "branch", "t1")], stored, scope="k1")
    assert isinstance(ok, ImportPlan)
    refused = plan_import([unit("b4", "branch", "t2")], stored, scope="k1")
    assert errors(refused) == [("[0].id", Reason.OUT_OF_SCOPE)]
    # moving a unit out of the token's subtree is refused too
    stolen = plan_import([unit("b1", "branch", "t2", members=30)], stored, scope="k2")
    assert errors(stolen) == [("[0].id", Reason.OUT_OF_SCOPE)]


def test_path_follows_the_placement_in_force_on_the_day() -> None:
    moved = UnitRecord(
        unit("t1", "township", "k2"), (Placement(dt.date.min, "k1"), Placement(D(2026, 7, 1), "k2"))
    )
    view = view_of(tree()).with_records([moved])
    assert view.path_on("b1", D(2026, 6, 30)) == ("c", "k1", "t1", "b1")
    assert view.path_on("b1", D(2026, 7, 1)) == ("c", "k2", "t1", "b1")
    assert view.path_on("b1") == ("c", "k2", "t1", "b1")
    assert view.within("b1", "k1", D(2026, 6, 1))
    assert not view.within("b1", "k1", D(2026, 8, 1))


def test_move_publishes_the_path_from_its_effective_date() -> None:
    result = plan_move(view_of(tree()), "t1", "k2", D(2026, 7, 1))
    assert isinstance(result, list)
    assert isinstance(result[0], Change)
    change = result[0]
    assert (change.kind, change.effective, change.path) == (
        "move",
        D(2026, 7, 1),
        ("c", "k2", "t1"),
    )
    assert change.record.unit.parent == "k2"
    assert change.record.parent_on(D(2026, 6, 30)) == "k1"


def test_move_refuses_cycles_levels_and_unknown_parents() -> None:
    view = view_of(tree())
    assert errors(plan_move(view, "k1", "t1", D(2026, 7, 1))) == [("parent", Reason.WRONG_LEVEL)]
    assert errors(plan_move(view, "t1", "zz", D(2026, 7, 1))) == [("parent", Reason.UNKNOWN_UNIT)]
    assert errors(plan_move(view, "zz", "k1", D(2026, 7, 1))) == [("id", Reason.UNKNOWN_UNIT)]
    assert plan_move(view, "t1", "k1", D(2026, 7, 1)) == []


def test_merge_closes_the_unit_and_moves_its_children() -> None:
    view = view_of([*tree(), unit("t3", "township", "k1")])
    result = plan_merge(view, "t1", "t3", D(2026, 8, 1))
    assert isinstance(result, list)
    kinds = [(c.kind, c.record.id) for c in result if isinstance(c, Change)]
    assert kinds == [("merge", "t1"), ("move", "b1"), ("move", "b2")]
    merge = result[0]
    assert isinstance(merge, Change)
    assert merge.merged_into == "t3"
    assert merge.record.unit.closed == D(2026, 8, 1)
    moved = result[1]
    assert isinstance(moved, Change)
    assert moved.path == ("c", "k1", "t3", "b1")


def test_merge_needs_the_same_level() -> None:
    assert errors(plan_merge(view_of(tree()), "t1", "k2", D(2026, 8, 1))) == [
        ("into", Reason.WRONG_LEVEL)
    ]


def test_close_needs_no_active_children() -> None:
    view = view_of(tree())
    assert errors(plan_close(view, "t1", D(2026, 8, 1))) == [("effective", Reason.INVALID_FIELD)]
    result = plan_close(view, "b1", D(2026, 8, 1))
    assert isinstance(result, list)
    assert isinstance(result[0], Change)
    assert result[0].record.unit.closed == D(2026, 8, 1)
    assert not result[0].record.unit.active_on(D(2026, 8, 1))


def test_a_token_on_the_unit_itself_may_rename_it_but_not_move_or_close_it() -> None:
    stored = view_of(tree())
    renamed = unit("b1", "branch", "t1", members=33).model_copy(update={"name": "新名"})
    assert isinstance(plan_import([renamed], stored, scope="b1", today=D(2026, 9, 1)), ImportPlan)
    moved = unit("b1", "branch", "t2", members=30)
    assert errors(plan_import([moved], stored, scope="b1")) == [("[0].id", Reason.OUT_OF_SCOPE)]
    closed = unit("b1", "branch", "t1", members=30, closed=D(2026, 3, 1))
    assert errors(plan_import([closed], stored, scope="b1")) == [("[0].id", Reason.OUT_OF_SCOPE)]
    # its parent may close it; a sibling may not even rename it
    assert isinstance(plan_import([closed], stored, scope="t1"), ImportPlan)
    assert errors(plan_import([renamed], stored, scope="b2")) == [("[0].id", Reason.OUT_OF_SCOPE)]
    # a dated move needs the token above both places: k1 is above t1, not above t2
    dated = plan_import([moved], stored, scope="k1", effectives=[D(2026, 7, 1)])
    assert errors(dated) == [("[0].id", Reason.OUT_OF_SCOPE)]
    assert isinstance(
        plan_import([moved], stored, scope="c", effectives=[D(2026, 7, 1)]), ImportPlan
    )


def test_a_dated_rename_holds_across_a_later_move_and_a_reimport_changes_nothing() -> None:
    view = view_of(tree())
    [move] = plan_move(view, "b1", "t2", D(2026, 7, 1))
    assert isinstance(move, Change)
    view = view.with_records([move.record])
    stored = view.get("b1")
    assert stored is not None
    same = plan_import([stored.unit], view, today=D(2026, 12, 1))
    assert isinstance(same, ImportPlan)
    assert same.count(ImportKind.UNCHANGED) == 1
    assert import_changes(same, view) == []
    renamed = stored.unit.model_copy(update={"name": "新名", "members": 35})
    plan = plan_import([renamed], view, effectives=[D(2026, 5, 1)], today=D(2026, 12, 1))
    assert isinstance(plan, ImportPlan)
    published = [
        (c.kind, c.effective, c.published_unit.parent, c.published_unit.name)
        for c in import_changes(plan, view)
    ]
    assert published == [
        ("upsert", D(2026, 5, 1), "t1", "新名"),
        ("upsert", D(2026, 7, 1), "t2", "新名"),
    ]


def test_merges_never_chain() -> None:
    view = view_of([*tree(), unit("t3", "township", "k1")])
    changes = plan_merge(view, "t1", "t3", D(2026, 8, 1))
    view = view.with_records(c.record for c in changes if isinstance(c, Change))
    assert errors(plan_merge(view, "t3", "t1", D(2026, 7, 1))) == [("into", Reason.UNIT_INACTIVE)]


def test_reopening_a_merged_unit_by_import_ends_the_merge() -> None:
    view = view_of([*tree(), unit("t3", "township", "k1")])
    changes = [c for c in plan_merge(view, "t1", "t3", D(2026, 8, 1)) if isinstance(c, Change)]
    view = view.with_records(c.record for c in changes)
    merged = view.get("t1")
    assert merged is not None
    assert merged.merged_into == "t3"
    plan = plan_import([merged.unit.model_copy(update={"closed": None})], view)
    assert isinstance(plan, ImportPlan)
    [reopened] = plan.units
    assert (reopened.record.unit.closed, reopened.record.merged_into) == (None, None)
    assert {c.merged_into for c in import_changes(plan, view)} == {None}
