"""Tree snapshots against a plain recomputation from the tree's own rules, on random trees
with moves, merges, openings, closings, units that appear later, unknown parents and
cycles; and the memory-saving parts (one snapshot per stretch between change points)."""

from __future__ import annotations

import datetime as dt
import itertools
import random

import pytest

from huibao_rollup.domain.tree import ALWAYS, SNAPSHOTS_KEPT, Tree, UnitVersion, UnknownUnitError

DAYS = [dt.date(2026, 1, 1) + dt.timedelta(days=d) for d in range(0, 200, 7)]


def version(
    unit: str,
    level: str,
    parent: str | None,
    *,
    members: int = 0,
    seq: int = 1,
    effective: dt.date = ALWAYS,
    opened: dt.date | None = None,
    closed: dt.date | None = None,
    merged_into: str | None = None,
) -> UnitVersion:
    return UnitVersion(
        unit=unit,
        effective=effective,
        seq=seq,
        kind="upsert",
        name=unit.upper(),
        level=level,
        parent=parent,
        members=members,
        opened=opened,
        closed=closed,
        merged_into=merged_into,
    )


def random_tree(seed: int) -> Tree:
    rng = random.Random(seed)
    tree = Tree()

    def day() -> dt.date:
        return rng.choice(DAYS) + dt.timedelta(days=rng.randint(0, 6))

    counties = [f"k{i}" for i in range(3)]
    towns = [f"t{i}" for i in range(6)]
    branches = [f"b{i:02d}" for i in range(30)]
    seq = 0

    def put(v: UnitVersion) -> None:
        nonlocal seq
        seq += 1
        tree.apply(UnitVersion(**{**{f: getattr(v, f) for f in v.__slots__}, "seq": seq}))

    put(version("c", "city", None))
    for k in counties:
        put(version(k, "county", "c"))
    for t in towns:
        put(version(t, "township", rng.choice(counties)))
    for b in branches:
        opened = day() if rng.random() < 0.3 else None
        closed = day() if rng.random() < 0.3 else None
        first = day() if rng.random() < 0.15 else ALWAYS  # appears only later
        put(
            version(
                b,
                "branch",
                rng.choice(towns),
                members=rng.randint(3, 50),
                effective=first,
                opened=opened,
                closed=closed,
            )
        )
    for _ in range(rng.randint(0, 12)):  # moves of townships and branches
        u = rng.choice(towns + branches)
        level = "township" if u.startswith("t") else "branch"
        parent = rng.choice(counties if level == "township" else towns)
        put(version(u, level, parent, members=rng.randint(3, 50), effective=day()))
    for _ in range(rng.randint(0, 2)):  # a township merged into another
        t, into = rng.sample(towns, 2)
        when = day()
        put(
            version(
                t, "township", rng.choice(counties), effective=when, closed=when, merged_into=into
            )
        )
    if rng.random() < 0.3:  # a branch under a parent nobody published yet
        put(version("b_orphan", "branch", "t_missing", members=5))
    if rng.random() < 0.3:  # a cycle from some day on
        a, b = rng.sample(towns, 2)
        when = day()
        put(version(a, "township", b, effective=when))
        put(version(b, "township", a, effective=when))
    if rng.random() < 0.2:  # a branch that is its own root
        put(version("b_root", "branch", None, members=7))
    return tree


def reference(tree: Tree, day: dt.date) -> dict[str, object]:
    """The snapshot recomputed unit by unit from versions, parents and paths."""
    children: dict[str, list[str]] = {}
    roots: list[str] = []
    branches: dict[str, int] = {}
    members: dict[str, int] = {}
    for unit in tree.units():
        v = tree.version_on(unit, day)
        if v is None:
            continue
        try:
            parent = tree.parent_on(unit, day)
            path = tree.path_on(unit, day)
        except UnknownUnitError:
            continue
        if parent is None:
            roots.append(unit)
        else:
            children.setdefault(parent, []).append(unit)
        if v.level == "branch" and v.active_on(day):
            for node in path:
                branches[node] = branches.get(node, 0) + 1
                members[node] = members.get(node, 0) + v.members
    return {
        "children": {k: tuple(sorted(c)) for k, c in children.items()},
        "roots": tuple(sorted(roots)),
        "branches": branches,
        "members": members,
    }


@pytest.mark.parametrize("seed", range(40))
def test_snapshots_equal_a_unit_by_unit_recomputation(seed: int) -> None:
    tree = random_tree(seed)
    for day in DAYS:
        snap = tree.snapshot(day)
        want = reference(tree, day)
        assert dict(snap.children) == want["children"], day
        assert snap.roots == want["roots"], day
        nodes = set(tree.units()) | {"t_missing"}
        assert {n: snap.branches[n] for n in nodes if n in snap.branches} == want["branches"]
        assert {n: snap.members.get(n, 0) for n in nodes} == {
            n: want["members"].get(n, 0)  # type: ignore[attr-defined]
            for n in nodes
        }
        assert dict(snap.branches) == want["branches"]
        expected_under = sorted(
            u
            for u in tree.units()
            if (v := tree.version_on(u, day)) is not None
            and v.level == "branch"
            and v.active_on(day)
            and tree.knows_path(u, day)
            and "c" in tree.path_on(u, day)
        )
        assert snap.active_branches_under("c") == expected_under


def test_days_between_change_points_share_one_snapshot() -> None:
    tree = random_tree(3)
    points = sorted(
        {
            d
            for u in tree.units()
            for v in tree.versions(u)
            for d in (v.effective, v.opened, v.closed)
            if d is not None and d != ALWAYS
        }
    )
    # the first two change points with days between them: every one of those days, from the
    # first point up to the day before the next, is one stretch
    gaps = [(a, b) for a, b in itertools.pairwise(points) if b - a > dt.timedelta(days=1)]
    assert gaps, f"the random tree has no change points two days apart: {points}"
    a, b = gaps[0]
    between = [a + dt.timedelta(days=d) for d in range((b - a).days)]
    assert len(between) >= 2
    assert {tree.stretch(d) for d in between} == {tree.stretch(a)}
    assert tree.stretch(b) != tree.stretch(a)
    assert tree.stretch(a - dt.timedelta(days=1)) != tree.stretch(a)
    day = a
    first = tree.snapshot(day)
    assert tree.has_snapshot(day)
    assert tree.snapshot(day).children is first.children  # built once, then kept
    assert tree.snapshot(between[-1]).children is first.children  # the stretch's one snapshot
    tree.apply(version("k_new", "county", "c", seq=10_000))
    assert not tree.has_snapshot(day)  # a change of the tree drops it


def test_only_a_few_snapshots_are_kept_and_unchanged_children_are_shared() -> None:
    tree = Tree()
    tree.apply(version("c", "city", None))
    tree.apply(version("t", "township", "c"))
    for i in range(40):  # a branch opening every week: 40 stretches
        tree.apply(version(f"b{i:02d}", "branch", "t", members=1, opened=DAYS[i % len(DAYS)]))
    snaps = [tree.snapshot(d) for d in DAYS]
    assert len(DAYS) > SNAPSHOTS_KEPT
    assert len(tree._shapes) == SNAPSHOTS_KEPT
    assert [s.branches["c"] for s in snaps] == [
        sum(1 for i in range(40) if DAYS[i % len(DAYS)] <= d) for d in DAYS
    ]
    assert snaps[0].children["c"] is snaps[5].children["c"]


def test_shared_strings_are_interned() -> None:
    tree = Tree()
    tree.apply(version("c", "city", None))
    tree.apply(version("t1", "township", "".join(["c"])))
    tree.apply(version("b1", "branch", "".join(["t", "1"]), members=3))
    tree.apply(version("b2", "branch", "".join(["t", "1"]), members=3))
    parents = {id(tree.latest(b).parent) for b in ("b1", "b2")}  # type: ignore[union-attr]
    assert len(parents) == 1
    assert tree.snapshot(dt.date(2026, 1, 1)).members["c"] == 6
