"""History that a re-import cannot rewrite (issue 13 point 6), on random sequences.

Random sequences of imports (renames and member counts with and without an effective
date, dated re-parents, closings, unchanged re-imports), moves, merges and closes go
through reporting's real planners; every published change goes, as the contract's
`OrgUnitChange`, into the rollup's versioned tree. An independent model keeps the dated
tree as plain per-unit timelines. For every unit and sample day the rollup's path and
name, for every node and month the facts' sums, branch counts and `members.total` (the
member count in force at the period's end), must equal the model's.

`HUIBAO_HISTORY_SEEDS` runs more or fewer seeds (default 40; 400 pass).
"""

from __future__ import annotations

import datetime as dt
import os
import random
from dataclasses import dataclass, field

import pytest

from huibao_contracts.calendar import CalendarRules
from huibao_contracts.orgunits import OrgUnit, OrgUnitChange
from huibao_contracts.periods import Period
from huibao_reporting.domain.registry import RegistryView
from huibao_reporting.domain.registry_changes import (
    Change,
    import_changes,
    plan_close,
    plan_merge,
    plan_move,
)
from huibao_reporting.domain.registry_rules import ImportPlan, plan_import
from huibao_rollup.domain.tree import Tree, Version
from huibao_rollup.domain.views import tree_metrics_of

TODAY = dt.date(2026, 12, 1)
RULES = CalendarRules()
ALWAYS = dt.date.min
SEEDS = int(os.environ.get("HUIBAO_HISTORY_SEEDS", "40"))
MONTHS = [Period.parse(f"2026-{m:02d}") for m in range(1, 13)]
SAMPLE_DAYS = [dt.date(2026, 1, 1) + dt.timedelta(days=d) for d in range(0, 365, 9)]


def at(timeline: dict[dt.date, object], day: dt.date) -> object:
    """The value in force on `day` (the earliest one before any dated value)."""
    keys = sorted(timeline)
    value = timeline[keys[0]]
    for k in keys:
        if k <= day:
            value = timeline[k]
    return value


@dataclass
class Model:
    """The dated tree as timelines, written from the rules, not from the code."""

    level: dict[str, str] = field(default_factory=dict)
    parents: dict[str, dict[dt.date, str | None]] = field(default_factory=dict)
    labels: dict[str, dict[dt.date, tuple[str, int]]] = field(default_factory=dict)
    closed: dict[str, dt.date | None] = field(default_factory=dict)
    merged: dict[str, str] = field(default_factory=dict)

    def add(self, u: OrgUnit) -> None:
        self.level[u.id] = str(u.level)
        self.parents[u.id] = {ALWAYS: u.parent}
        self.labels[u.id] = {ALWAYS: (u.name, u.members)}
        self.closed[u.id] = u.closed

    def row(self, u: OrgUnit, when: dt.date) -> None:
        """An import row is the unit's state from `when` on: its parent, name and members
        from then on, its closing its own; the stored latest state again changes nothing."""
        if self.latest(u.id) == u:
            return
        if at(self.parents[u.id], dt.date.max) != u.parent:
            self.parents[u.id][when] = u.parent
        if self.label(u.id, when) != (u.name, u.members):
            self.labels[u.id][when] = (u.name, u.members)
        self.closed[u.id] = u.closed

    def latest(self, u: str) -> OrgUnit:
        name, members = self.label(u, dt.date.max)
        parent = at(self.parents[u], dt.date.max)
        return OrgUnit(
            id=u,
            name=name,
            level=self.level[u],  # type: ignore[arg-type]
            parent=None if parent is None else str(parent),
            members=members,
            closed=self.closed[u],
        )

    def merged_away(self, u: str, day: dt.date) -> bool:
        closed = self.closed[u]
        return u in self.merged and closed is not None and closed <= day

    def parent(self, u: str, day: dt.date) -> str | None:
        p = self.merged[u] if self.merged_away(u, day) else at(self.parents[u], day)
        for _ in range(64):
            if p is None or not self.merged_away(str(p), day):
                break
            p = self.merged[str(p)]
        else:
            raise AssertionError(f"merges of {u} form a cycle on {day}")
        return None if p is None else str(p)

    def path(self, u: str, day: dt.date) -> tuple[str, ...]:
        out = [u]
        while (p := self.parent(out[0], day)) is not None:
            assert p not in out, f"the parents of {u} form a cycle on {day}"
            out.insert(0, p)
        return tuple(out)

    def label(self, u: str, day: dt.date) -> tuple[str, int]:
        value = at(self.labels[u], day)
        assert isinstance(value, tuple)
        return value

    def active(self, u: str, day: dt.date) -> bool:
        closed = self.closed[u]
        return closed is None or day < closed


class Pipeline:
    """Reporting's planners in front of the rollup's tree, as the topic would join them."""

    def __init__(self) -> None:
        self.view = RegistryView()
        self.tree = Tree()
        self.seq = 0

    def publish(self, changes: list[Change]) -> None:
        for c in changes:
            self.seq += 1
            change = OrgUnitChange(
                seq=self.seq,
                kind=c.kind,
                effective=c.effective,
                unit=c.published_unit,
                path=c.path,
                merged_into=c.merged_into,
            )
            self.tree.apply(Version.of(OrgUnitChange.model_validate_json(change.model_dump_json())))
        self.view = self.view.with_records(c.record for c in changes)

    def import_(self, units: list[OrgUnit], effectives: list[dt.date | None]) -> bool:
        plan = plan_import(units, self.view, effectives=effectives, today=TODAY)
        if not isinstance(plan, ImportPlan):
            return False
        self.publish(import_changes(plan, self.view))
        return True

    def dated(self, planned: list[Change] | list[object]) -> bool:
        """Publish a dated change; False when refused or when there is nothing to do."""
        if not planned or not isinstance(planned[0], Change):
            return False
        self.publish([c for c in planned if isinstance(c, Change)])
        return True


def initial_tree() -> list[OrgUnit]:
    units = [OrgUnit(id="c", name="市", level="city")]  # type: ignore[arg-type]
    for k in range(1, 4):
        units.append(OrgUnit(id=f"k{k}", name=f"县{k}", level="county", parent="c"))  # type: ignore[arg-type]
    for t in range(1, 7):
        units.append(
            OrgUnit(id=f"t{t}", name=f"镇{t}", level="township", parent=f"k{(t + 1) // 2}")  # type: ignore[arg-type]
        )
    for b in range(1, 19):
        units.append(
            OrgUnit(
                id=f"b{b:02d}",
                name=f"支部{b}",
                level="branch",  # type: ignore[arg-type]
                parent=f"t{(b + 2) // 3}",
                members=10 + b,
            )
        )
    return units


def run_sequence(seed: int, steps: int = 30) -> tuple[Pipeline, Model]:
    rng = random.Random(seed)
    pipe, model = Pipeline(), Model()
    units = initial_tree()
    assert pipe.import_(units, [None] * len(units))
    for u in units:
        model.add(u)
    townships = [u.id for u in units if u.level == "township"]
    branches = [u.id for u in units if u.level == "branch"]

    def day() -> dt.date:
        return dt.date(2026, 1, 1) + dt.timedelta(days=rng.randint(0, 364))

    def latest(unit: str) -> OrgUnit:
        record = pipe.view.get(unit)
        assert record is not None
        return record.unit

    for step in range(steps):
        op = rng.choice(["rename", "rename", "move", "move", "reparent", "merge", "close", "same"])
        u = rng.choice(townships + branches + branches)
        level = model.level[u]
        if op == "rename":
            when = day() if rng.random() < 0.7 else None
            name, members = f"{u}-{step}", rng.randint(0, 60)
            row = latest(u).model_copy(update={"name": name, "members": members})
            if pipe.import_([row], [when]):
                model.row(row, when or TODAY)
        elif op in ("move", "reparent"):
            pool = ["k1", "k2", "k3"] if level == "township" else townships
            parent, when = rng.choice(pool), day()
            if op == "move":
                if pipe.dated(plan_move(pipe.view, u, parent, when)):
                    model.parents[u][when] = parent
            else:
                row = latest(u).model_copy(update={"parent": parent})
                if row.parent != latest(u).parent and pipe.import_([row], [when]):
                    model.row(row, when)
        elif op == "merge":
            pool = townships if level == "township" else branches
            into, when = rng.choice(pool), day()
            kids = [
                c
                for c in model.parents
                if at(model.parents[c], when) == u
                and (model.closed[c] is None or model.closed[c] > when)  # type: ignore[operator]
            ]
            if pipe.dated(plan_merge(pipe.view, u, into, when)):
                model.closed[u], model.merged[u] = when, into
                for c in kids:
                    model.parents[c][when] = into
        elif op == "close":
            when = day()
            if rng.random() < 0.5:
                if pipe.dated(plan_close(pipe.view, u, when)):
                    model.closed[u] = when
            elif level == "branch" and u not in model.merged:
                row = latest(u).model_copy(update={"closed": when})
                if row.opened is None or row.opened < when:
                    assert pipe.import_([row], [None])
                    model.row(row, TODAY)
        else:  # a re-import of what is stored changes nothing
            generation = pipe.tree.generation
            assert pipe.import_([latest(x) for x in model.level], [None] * len(model.level))
            assert pipe.tree.generation == generation, f"step {step}: a no-op import published"
    return pipe, model


def facts(seed: int) -> list[tuple[str, dt.date, int]]:
    rng = random.Random(seed * 7919)
    start = dt.date(2026, 1, 1)
    return [
        (f"b{b:02d}", start + dt.timedelta(days=rng.randint(0, 364)), rng.randint(1, 9))
        for b in range(1, 19)
        for _ in range(4)
    ]


@pytest.mark.parametrize("seed", range(SEEDS))
def test_random_histories_equal_the_model(seed: int) -> None:
    pipe, model = run_sequence(seed)
    tree = pipe.tree
    for u in model.level:
        for d in SAMPLE_DAYS:
            assert tree.path_on(u, d) == model.path(u, d), (u, d)
            v = tree.version_on(u, d)
            assert v is not None
            assert (v.name, v.members) == model.label(u, d), (u, d)
    got: dict[tuple[str, str], int] = {}
    want: dict[tuple[str, str], int] = {}
    for unit, d, value in facts(seed):
        month = str(Period.all_of(d)[0])
        for node in tree.path_on(unit, d):
            got[(node, month)] = got.get((node, month), 0) + value
        for node in model.path(unit, d):
            want[(node, month)] = want.get((node, month), 0) + value
    assert got == want
    nodes = list(model.level)
    for period in MONTHS:
        end = period.last_day
        figures = tree_metrics_of(tree, RULES, nodes, period)
        for node in nodes:
            counted = [
                b
                for b in model.level
                if model.level[b] == "branch"
                and model.active(b, end)
                and node in model.path(b, end)
            ]
            assert figures[node]["orgunits.branches"] == len(counted), (node, str(period))
            assert figures[node]["members.total"] == sum(model.label(b, end)[1] for b in counted), (
                node,
                str(period),
            )


def test_a_reimport_with_the_new_parent_keeps_the_history_before_the_move() -> None:
    """The case of the issue: moved with a date, re-imported with its new parent and a new
    member count: before the move it stays where it was, with its old count."""
    pipe = Pipeline()
    units = initial_tree()
    assert pipe.import_(units, [None] * len(units))
    july, sept = dt.date(2026, 7, 1), dt.date(2026, 9, 1)
    assert pipe.dated(plan_move(pipe.view, "b01", "t4", july))
    record = pipe.view.get("b01")
    assert record is not None
    generation = pipe.tree.generation
    assert pipe.import_([record.unit], [None])  # the same row again: nothing at all
    assert pipe.tree.generation == generation
    renamed = record.unit.model_copy(update={"name": "新名", "members": 40})
    assert pipe.import_([renamed], [sept])
    tree = pipe.tree
    assert tree.path_on("b01", dt.date(2026, 6, 30)) == ("c", "k1", "t1", "b01")
    assert tree.path_on("b01", dt.date(2026, 8, 1)) == ("c", "k2", "t4", "b01")
    assert tree.path_on("b01", dt.date(2026, 10, 1)) == ("c", "k2", "t4", "b01")
    assert [(v.effective, v.parent, v.name, v.members) for v in tree.versions("b01")] == [
        (ALWAYS, "t1", "支部1", 11),
        (july, "t4", "支部1", 11),
        (sept, "t4", "新名", 40),
    ]
    june = tree_metrics_of(tree, RULES, ["k1", "k2"], Period.parse("2026-06"))
    october = tree_metrics_of(tree, RULES, ["k1", "k2"], Period.parse("2026-10"))
    assert june["k1"]["members.total"] == sum(10 + b for b in range(1, 7))
    assert october["k2"]["members.total"] == sum(10 + b for b in range(7, 13)) + 40


def test_facts_of_a_merged_unit_after_the_merge_count_under_the_absorbing_unit() -> None:
    pipe = Pipeline()
    units = initial_tree()
    assert pipe.import_(units, [None] * len(units))
    aug = dt.date(2026, 8, 1)
    assert pipe.dated(plan_merge(pipe.view, "b01", "b10", aug))
    assert pipe.tree.path_on("b01", dt.date(2026, 7, 31)) == ("c", "k1", "t1", "b01")
    assert pipe.tree.path_on("b01", aug) == ("c", "k2", "t4", "b10", "b01")
