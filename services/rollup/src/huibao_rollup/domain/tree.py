"""The versioned org-unit tree: every unit's states over time, and the tree on any day.

Each `OrgUnitChange` is one version of a unit, keyed by (unit, effective); the version in
force on a day is the latest one whose `effective` is on or before it (no `effective` means
since always). Paths are resolved through the parents in force on the day asked about, so
moving a township moves its branches too without a change per branch; a parent that was
merged away on that day hands its children to the unit it was merged into.
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

from huibao_contracts.orgunits import Level, OrgUnitChange

ALWAYS = dt.date.min
"""The `effective` of a version that holds since always."""

MAX_DEPTH = 64


@dataclass(frozen=True, slots=True)
class Version:
    """One state of a unit, in force from `effective` until the unit's next version."""

    unit: str
    effective: dt.date
    seq: int
    kind: str
    name: str
    level: str
    parent: str | None
    members: int
    opened: dt.date | None
    closed: dt.date | None
    merged_into: str | None = None

    def active_on(self, day: dt.date) -> bool:
        """True when the unit is open on `day`."""
        return (self.opened is None or self.opened <= day) and (
            self.closed is None or day < self.closed
        )

    @classmethod
    def of(cls, change: OrgUnitChange) -> Version:
        """The version a published change describes."""
        u = change.unit
        return cls(
            unit=u.id,
            effective=change.effective or ALWAYS,
            seq=change.seq,
            kind=change.kind,
            name=u.name,
            level=str(u.level),
            parent=u.parent,
            members=u.members,
            opened=u.opened,
            closed=u.closed,
            merged_into=change.merged_into,
        )


class UnknownUnitError(LookupError):
    """A unit (or one of its ancestors) has no version in the tree yet."""


class Tree:
    """Every version of every unit; answers paths and snapshots for any day."""

    def __init__(self) -> None:
        self._versions: dict[str, list[Version]] = {}
        self.generation = 0
        """Increases with every change: caches keyed by it stay valid until the tree changes."""
        self._paths: dict[tuple[str, dt.date], tuple[str, ...]] = {}

    def __contains__(self, unit: object) -> bool:
        return unit in self._versions

    def __len__(self) -> int:
        return len(self._versions)

    def units(self) -> list[str]:
        """Every unit id ever seen."""
        return list(self._versions)

    def versions(self, unit: str) -> list[Version]:
        """The versions of `unit`, oldest first (empty when unknown)."""
        return list(self._versions.get(unit, ()))

    def apply(self, version: Version) -> bool:
        """Store a version; False when a version with the same key and a seq at least as
        high is already there (replays are harmless)."""
        versions = self._versions.setdefault(version.unit, [])
        keys = [v.effective for v in versions]
        i = bisect.bisect_left(keys, version.effective)
        if i < len(versions) and versions[i].effective == version.effective:
            if versions[i].seq >= version.seq:
                return False
            versions[i] = version
        else:
            versions.insert(i, version)
        self.generation += 1
        self._paths.clear()
        return True

    def version_on(self, unit: str, day: dt.date) -> Version | None:
        """The version of `unit` in force on `day`, or None before its first version."""
        versions = self._versions.get(unit)
        if not versions:
            return None
        i = bisect.bisect_right([v.effective for v in versions], day)
        return versions[i - 1] if i else None

    def latest(self, unit: str) -> Version | None:
        """The newest version of `unit`."""
        versions = self._versions.get(unit)
        return versions[-1] if versions else None

    def current(self, unit: str, day: dt.date) -> Version | None:
        """The version in force on `day`, else the earliest one (a unit created later)."""
        v = self.version_on(unit, day)
        if v is None and (versions := self._versions.get(unit)):
            return versions[0]
        return v

    def parent_on(self, unit: str, day: dt.date) -> str | None:
        """The parent of `unit` on `day`, following merges of the parent."""
        v = self.current(unit, day)
        if v is None:
            raise UnknownUnitError(unit)
        parent = v.parent
        for _ in range(MAX_DEPTH):
            if parent is None:
                return None
            pv = self.current(parent, day)
            if pv is None or pv.merged_into is None or pv.active_on(day):
                return parent
            parent = pv.merged_into
        return parent

    def path_on(self, unit: str, day: dt.date) -> tuple[str, ...]:
        """Ancestors root → unit (unit last) in force on `day`; UnknownUnitError when a unit
        of the chain is unknown."""
        cached = self._paths.get((unit, day))
        if cached is not None:
            return cached
        if len(self._paths) > 200_000:
            self._paths.clear()
        chain = [unit]
        node: str | None = unit
        while node is not None:
            node = self.parent_on(node, day)
            if node is not None:
                if node in chain or len(chain) >= MAX_DEPTH:
                    break
                chain.append(node)
        chain.reverse()
        path = self._paths[(unit, day)] = tuple(chain)
        return path

    def knows_path(self, unit: str, day: dt.date) -> bool:
        """True when `unit` and every ancestor on `day` are known."""
        try:
            self.path_on(unit, day)
        except UnknownUnitError:
            return False
        return True

    def snapshot(self, day: dt.date) -> Snapshot:
        """The tree as it stood on `day` (cached until the tree changes)."""
        return _snapshot(self, self.generation, day)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The tree on one day: units in force, children, and per-node branch and member counts."""

    day: dt.date
    versions: dict[str, Version]
    children: dict[str, tuple[str, ...]]
    roots: tuple[str, ...]
    branches: dict[str, int]
    members: dict[str, int]
    paths: dict[str, tuple[str, ...]]

    def active_branches_under(self, node: str) -> list[str]:
        """Active branches in the subtree of `node` (itself included), sorted by id."""
        out: list[str] = []
        stack = [node]
        while stack:
            n = stack.pop()
            v = self.versions.get(n)
            if v is not None and v.level == Level.BRANCH and v.active_on(self.day):
                out.append(n)
            stack.extend(self.children.get(n, ()))
        out.sort()
        return out


@lru_cache(maxsize=32)
def _snapshot(tree: Tree, generation: int, day: dt.date) -> Snapshot:
    del generation  # part of the cache key only
    versions = {u: v for u in tree.units() if (v := tree.version_on(u, day)) is not None}
    children: dict[str, list[str]] = {}
    paths: dict[str, tuple[str, ...]] = {}
    roots: list[str] = []
    branches: dict[str, int] = {}
    members: dict[str, int] = {}
    for unit, v in versions.items():
        try:
            parent = tree.parent_on(unit, day)
            path = tree.path_on(unit, day)
        except UnknownUnitError:
            continue
        paths[unit] = path
        if parent is None:
            roots.append(unit)
        else:
            children.setdefault(parent, []).append(unit)
        if v.level == Level.BRANCH and v.active_on(day):
            for node in path:
                branches[node] = branches.get(node, 0) + 1
                members[node] = members.get(node, 0) + v.members
    return Snapshot(
        day=day,
        versions=versions,
        children={k: tuple(sorted(c)) for k, c in children.items()},
        roots=tuple(sorted(roots)),
        branches=branches,
        members=members,
        paths=paths,
    )
