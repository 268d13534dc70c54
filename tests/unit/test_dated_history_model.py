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

import asyncio
import datetime as dt
import os
import random
from collections.abc import Sequence

import pytest
from tests.support.dated_model import ALWAYS, Model, initial_tree, run_sequence

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
from huibao_reporting.domain.registry_rules import ImportKind, ImportPlan, plan_import
from huibao_rollup.domain.tree import Tree, UnitVersion
from huibao_rollup.domain.views import tree_metrics_of

TODAY = dt.date(2026, 12, 1)
RULES = CalendarRules()
SEEDS = int(os.environ.get("HUIBAO_HISTORY_SEEDS", "40"))
MONTHS = [Period.parse(f"2026-{m:02d}") for m in range(1, 13)]
SAMPLE_DAYS = [dt.date(2026, 1, 1) + dt.timedelta(days=d) for d in range(0, 365, 9)]


class Planners:
    """The `Driver` of a sequence over a `Pipeline`."""

    def __init__(self, pipe: Pipeline) -> None:
        self.pipe = pipe

    async def import_(
        self, units: list[OrgUnit], effectives: list[dt.date | None]
    ) -> dict[str, int] | None:
        counts = self.pipe.counts(units, effectives)
        if counts is not None and counts["created"] == counts["updated"] == 0:
            assert counts["published"] == 0, "an unchanged import published"
        return counts

    async def move(self, unit: str, parent: str, when: dt.date) -> bool:
        return self.pipe.dated(plan_move(self.pipe.view, unit, parent, when))

    async def merge(self, unit: str, into: str, when: dt.date) -> bool:
        return self.pipe.dated(plan_merge(self.pipe.view, unit, into, when))

    async def close(self, unit: str, when: dt.date) -> bool:
        return self.pipe.dated(plan_close(self.pipe.view, unit, when))

    async def latest(self, unit: str) -> OrgUnit:
        record = self.pipe.view.get(unit)
        assert record is not None
        return record.unit


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
            self.tree.apply(
                UnitVersion.of(OrgUnitChange.model_validate_json(change.model_dump_json()))
            )
        self.view = self.view.with_records(c.record for c in changes)

    def import_(self, units: list[OrgUnit], effectives: list[dt.date | None]) -> bool:
        plan = plan_import(units, self.view, effectives=effectives, today=TODAY)
        if not isinstance(plan, ImportPlan):
            return False
        self.publish(import_changes(plan, self.view))
        return True

    def counts(
        self, units: list[OrgUnit], effectives: list[dt.date | None]
    ) -> dict[str, int] | None:
        plan = plan_import(units, self.view, effectives=effectives, today=TODAY)
        if not isinstance(plan, ImportPlan):
            return None
        changes = import_changes(plan, self.view)
        self.publish(changes)
        return {kind.value: plan.count(kind) for kind in ImportKind} | {"published": len(changes)}

    def dated(self, planned: Sequence[object]) -> bool:
        """Publish a dated change; False when refused or when there is nothing to do."""
        if not planned or not isinstance(planned[0], Change):
            return False
        self.publish([c for c in planned if isinstance(c, Change)])
        return True


def run(seed: int, steps: int = 30) -> tuple[Pipeline, Model]:
    """A random sequence through reporting's planners into the rollup's tree."""
    pipe, model = Pipeline(), Model()
    units = initial_tree()
    assert pipe.import_(units, [None] * len(units))
    for u in units:
        model.add(u)
    done = asyncio.run(
        run_sequence(Planners(pipe), model, random.Random(seed), units, TODAY, steps)
    )
    assert sum(done.values()) > 0, done
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
    pipe, model = run(seed)
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
