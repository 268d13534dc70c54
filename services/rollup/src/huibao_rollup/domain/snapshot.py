"""The tree on one day, kept compact enough for a million units.

A snapshot keeps what cannot be looked up cheaply in the tree: the children of every inner
node and the branch and member counts of inner nodes. A branch's own counts, versions and
paths are looked up in the tree when asked. See `huibao_rollup.domain.tree` for when
snapshots are built and how many are kept.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from huibao_contracts.orgunits import Level
from huibao_rollup.domain.paths import MAX_DEPTH, UnknownUnitError, chain
from huibao_rollup.domain.unit_version import UnitVersion

BRANCH = str(Level.BRANCH)


class Tree(Protocol):
    """What a snapshot reads from the versioned tree (`huibao_rollup.domain.tree.Tree`),
    named here so that this module never imports it back."""

    def units(self) -> list[str]:
        """Every unit id ever seen."""
        ...

    def parent_on(self, unit: str, day: dt.date) -> str | None:
        """The parent of `unit` on `day`."""
        ...

    def version_on(self, unit: str, day: dt.date) -> UnitVersion | None:
        """The version of `unit` in force on `day`."""
        ...

    def path_on(self, unit: str, day: dt.date) -> tuple[str, ...]:
        """The path root → `unit` on `day`."""
        ...

    def is_active_branch(self, unit: str, day: dt.date) -> bool:
        """True when `unit` is a branch open on `day` whose whole path is known."""
        ...


@dataclass(frozen=True, slots=True)
class PreparedSnapshot:
    """A snapshot built by `Tree.prepare` for one generation and stretch."""

    generation: int
    stretch: int
    shape: Shape


@dataclass(frozen=True, slots=True)
class Shape:
    """What a snapshot keeps: the children of inner nodes, their counts, and the roots."""

    children: dict[str, tuple[str, ...]]
    roots: tuple[str, ...]
    below_branches: dict[str, int]
    """Active branches strictly below each node (a branch's own 1 is looked up apart)."""
    below_members: dict[str, int]


def build_shape(tree: Tree, day: dt.date, like: Shape | None) -> Shape:
    """The shape of the tree on `day`, in one pass over every unit.

    A unit's path is its parent's path plus itself (unless it lies on its parent's path:
    a cycle, resolved exactly), so paths are resolved once per parent, not per unit, and
    counts are summed per parent first and then rolled up each parent's path. Child
    tuples equal to those of `like` (another snapshot) are shared with it."""
    parents: dict[str, str | None] = {}

    def parent_of(unit: str, on: dt.date) -> str | None:
        if unit in parents:
            return parents[unit]
        p = parents[unit] = tree.parent_on(unit, on)
        return p

    paths: dict[str, tuple[str, ...] | None] = {}

    def path_of(unit: str) -> tuple[str, ...] | None:
        if unit in paths:
            return paths[unit]
        try:
            p: tuple[str, ...] | None = chain(unit, day, parent_of)
        except UnknownUnitError:
            p = None
        paths[unit] = p
        return p

    children: dict[str, list[str]] = {}
    roots: list[str] = []
    per_parent: dict[str, list[int]] = {}
    exact: list[tuple[tuple[str, ...], int]] = []
    for unit in tree.units():
        v = tree.version_on(unit, day)
        if v is None:
            continue
        parent = tree.parent_on(unit, day)
        counted = v.level == BRANCH and v.active_on(day)
        if parent is None:
            roots.append(unit)
            continue
        ppath = path_of(parent)
        if ppath is not None and unit not in ppath and len(ppath) < MAX_DEPTH:
            children.setdefault(parent, []).append(unit)
            if counted:
                if (c := per_parent.get(parent)) is None:
                    per_parent[parent] = [1, v.members]
                else:
                    c[0] += 1
                    c[1] += v.members
            continue
        try:  # a cycle through the unit, or an absurd depth: its exact path
            path = chain(unit, day, tree.parent_on)
        except UnknownUnitError:
            continue
        children.setdefault(parent, []).append(unit)
        if counted:
            exact.append((path[:-1], v.members))
    rolled = [(paths[p] or (), n, m) for p, (n, m) in per_parent.items()]
    below_branches, below_members = _rolled_up(rolled + [(path, 1, m) for path, m in exact])
    shared = like.children if like is not None else {}
    kids: dict[str, tuple[str, ...]] = {}
    for node, units in children.items():
        t = tuple(sorted(units))
        old = shared.get(node)
        kids[node] = old if old == t else t
    return Shape(kids, tuple(sorted(roots)), below_branches, below_members)


def _rolled_up(
    counts: list[tuple[tuple[str, ...], int, int]],
) -> tuple[dict[str, int], dict[str, int]]:
    """(path, branches, members) → branches and members summed on every node of the path."""
    branches: dict[str, int] = {}
    members: dict[str, int] = {}
    for path, n, m in counts:
        for node in path:
            branches[node] = branches.get(node, 0) + n
            members[node] = members.get(node, 0) + m
    return branches, members


class Snapshot:
    """The tree on one day: children, roots, per-node branch and member counts, and the
    versions and paths in force (looked up in the tree)."""

    __slots__ = ("_shape", "_tree", "day")

    def __init__(self, day: dt.date, tree: Tree, shape: Shape) -> None:
        self.day = day
        self._tree = tree
        self._shape = shape

    @property
    def children(self) -> Mapping[str, tuple[str, ...]]:
        """Node → its children on the day, sorted by id (nodes without children absent)."""
        return self._shape.children

    @property
    def roots(self) -> tuple[str, ...]:
        """Units without a parent on the day, sorted by id."""
        return self._shape.roots

    @property
    def branches(self) -> Mapping[str, int]:
        """Node → active branches in its subtree, itself included (absent when none)."""
        return _Counts(self, members=False)

    @property
    def members(self) -> Mapping[str, int]:
        """Node → members of the active branches in its subtree (absent when none)."""
        return _Counts(self, members=True)

    def version(self, unit: str) -> UnitVersion | None:
        """The version of `unit` in force on the day (None before its first)."""
        return self._tree.version_on(unit, self.day)

    def path(self, unit: str) -> tuple[str, ...]:
        """The path root → `unit` on the day (UnknownUnitError when it cannot be known)."""
        return self._tree.path_on(unit, self.day)

    def active_branches_under(self, node: str) -> list[str]:
        """Active branches in the subtree of `node` (itself included), sorted by id."""
        out: list[str] = []
        stack = [node]
        children = self._shape.children
        version_on, day = self._tree.version_on, self.day
        while stack:
            n = stack.pop()
            v = version_on(n, day)
            if v is not None and v.level == BRANCH and v.active_on(day):
                out.append(n)
            stack.extend(children.get(n, ()))
        out.sort()
        return out


class _Counts(Mapping[str, int]):
    """Branch or member counts of a snapshot: inner nodes from the snapshot, a branch's own
    share looked up in the tree."""

    __slots__ = ("_members", "_snap")

    def __init__(self, snap: Snapshot, *, members: bool) -> None:
        self._snap = snap
        self._members = members

    def __getitem__(self, node: str) -> int:
        snap = self._snap
        shape = snap._shape
        below = (shape.below_members if self._members else shape.below_branches).get(node)
        own = 0
        if snap._tree.is_active_branch(node, snap.day):
            v = snap.version(node)
            own = (v.members if v is not None else 0) if self._members else 1
        if below is None and not own:
            raise KeyError(node)
        return (below or 0) + own

    def __iter__(self) -> Iterator[str]:
        snap = self._snap
        below = snap._shape.below_branches
        yield from below
        tree = snap._tree
        for unit in tree.units():
            if unit not in below and tree.is_active_branch(unit, snap.day):
                yield unit

    def __len__(self) -> int:
        return sum(1 for _ in self)
