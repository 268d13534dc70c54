"""The versioned org-unit tree: every unit's states over time, and the tree on any day.

Each `OrgUnitChange` is one version of a unit, keyed by (unit, effective); the version in
force on a day is the latest one whose `effective` is on or before it (no `effective` means
since always). Paths are resolved through the parents in force on the day asked about, so
moving a township moves its branches too without a change per branch; a unit merged away
(its `merged_into` set and the day on or after its `closed`) counts as a child of the unit
it was merged into from then on: its children, and its own facts dated on or after the
merge, count under the absorbing unit and its ancestors.

Memory, for a tree of a million units: a unit with one version (almost all of them) is
stored as that version, not a list; ids named as parents, levels and kinds are shared, so
a township's id is one string however many branches name it. The tree on a day is the same
on every day between two *change points* (the dates on which some version takes effect,
opens or closes), so snapshots are built once per stretch between change points, not per
day, and a snapshot keeps only what cannot be looked up cheaply: the children of each
inner node and the branch and member counts of inner nodes (a branch's own counts, its
version and path are looked up in the tree when asked).
"""

from __future__ import annotations

import bisect
import datetime as dt
import sys
from collections import OrderedDict

from huibao_rollup.domain.paths import MAX_DEPTH, UnknownUnitError, chain
from huibao_rollup.domain.snapshot import BRANCH, PreparedSnapshot, Shape, Snapshot, build_shape
from huibao_rollup.domain.unit_version import ALWAYS, UnitVersion

SNAPSHOTS_KEPT = 24
"""Snapshots kept per tree generation, one per stretch between change points asked for:
enough for a year of Party Days and month ends even when every day is a change point."""
_intern = sys.intern


class Tree:
    """Every version of every unit; answers paths and snapshots for any day."""

    def __init__(self) -> None:
        self._versions: dict[str, UnitVersion | list[UnitVersion]] = {}
        self._ids: dict[str, str] = {}
        """One string object per id named as a parent or merge target (see `_share`)."""
        self.generation = 0
        """Increases with every change: caches keyed by it stay valid until the tree changes."""
        self._paths: dict[tuple[str, int], tuple[str, ...]] = {}
        self._points: set[dt.date] = set()
        self._sorted_points: tuple[int, list[dt.date]] = (0, [])
        """(generation, sorted change points): a tuple, so that a worker thread building a
        snapshot (`prepare`) never leaves a stale list behind a newer generation."""
        self._shapes: OrderedDict[int, Shape] = OrderedDict()
        self._shapes_generation = 0
        self._previous: Shape | None = None

    def __contains__(self, unit: object) -> bool:
        return unit in self._versions

    def __len__(self) -> int:
        return len(self._versions)

    def units(self) -> list[str]:
        """Every unit id ever seen."""
        return list(self._versions)

    def versions(self, unit: str) -> list[UnitVersion]:
        """The versions of `unit`, oldest first (empty when unknown)."""
        vs = self._versions.get(unit)
        if vs is None:
            return []
        return [vs] if isinstance(vs, UnitVersion) else list(vs)

    def _share(self, v: UnitVersion) -> None:
        """Make `v`'s ids, level and kind the string objects the tree already holds: a
        township's id is then one object, not one copy per branch naming it as parent.
        (Only the identity of equal strings changes, so `v` stays the same value.)"""
        ids = self._ids
        setattr_ = object.__setattr__
        if (parent := v.parent) is not None:
            setattr_(v, "parent", ids.setdefault(parent, parent))
        if (into := v.merged_into) is not None:
            setattr_(v, "merged_into", ids.setdefault(into, into))
        if (unit := ids.get(v.unit)) is not None:
            setattr_(v, "unit", unit)
        setattr_(v, "level", _intern(v.level))
        setattr_(v, "kind", _intern(v.kind))

    def apply(self, version: UnitVersion) -> bool:
        """Store a version; False when a version with the same key and a seq at least as
        high is already there (replays are harmless)."""
        stored = self._versions.get(version.unit)
        if isinstance(stored, UnitVersion):
            if stored.effective == version.effective and stored.seq >= version.seq:
                return False
            self._share(version)
            if stored.effective == version.effective:
                self._versions[version.unit] = version
            else:
                pair = [stored, version]
                pair.sort(key=lambda v: v.effective)
                self._versions[version.unit] = pair
        elif stored is None:
            self._share(version)
            self._versions[version.unit] = version
        else:
            i = bisect.bisect_left([v.effective for v in stored], version.effective)
            if i < len(stored) and stored[i].effective == version.effective:
                if stored[i].seq >= version.seq:
                    return False
                self._share(version)
                stored[i] = version
            else:
                self._share(version)
                stored.insert(i, version)
        points = self._points
        for day in (version.effective, version.opened, version.closed):
            if day is not None and day != ALWAYS:
                points.add(day)
        self.generation += 1
        self._paths.clear()
        return True

    def stretch(self, day: dt.date) -> int:
        """Which stretch between change points `day` lies in: two days of the same stretch
        see the same tree (same versions in force, same units open, same paths)."""
        generation, points = self._sorted_points
        if generation != self.generation:
            generation = self.generation  # read first: a change meanwhile makes it stale
            points = sorted(self._points)
            self._sorted_points = (generation, points)
        return bisect.bisect_right(points, day)

    def version_on(self, unit: str, day: dt.date) -> UnitVersion | None:
        """The version of `unit` in force on `day`, or None before its first version."""
        vs = self._versions.get(unit)
        if vs is None:
            return None
        if isinstance(vs, UnitVersion):
            return vs if vs.effective <= day else None
        i = bisect.bisect_right([v.effective for v in vs], day)
        return vs[i - 1] if i else None

    def latest(self, unit: str) -> UnitVersion | None:
        """The newest version of `unit`."""
        vs = self._versions.get(unit)
        if vs is None or isinstance(vs, UnitVersion):
            return vs
        return vs[-1]

    def current(self, unit: str, day: dt.date) -> UnitVersion | None:
        """The version in force on `day`, else the earliest one (a unit created later)."""
        vs = self._versions.get(unit)
        if vs is None or isinstance(vs, UnitVersion):
            return vs
        i = bisect.bisect_right([v.effective for v in vs], day)
        return vs[i - 1] if i else vs[0]

    def parent_on(self, unit: str, day: dt.date) -> str | None:
        """The parent of `unit` on `day`: the unit it was merged into once merged away,
        following merges of the parent."""
        v = self.current(unit, day)
        if v is None:
            raise UnknownUnitError(unit)
        parent = v.merged_into if v.merged_away(day) else v.parent
        for _ in range(MAX_DEPTH):
            if parent is None:
                return None
            pv = self.current(parent, day)
            if pv is None or not pv.merged_away(day):
                return parent
            parent = pv.merged_into
        return parent

    def path_on(self, unit: str, day: dt.date) -> tuple[str, ...]:
        """Ancestors root → unit (unit last) in force on `day`; UnknownUnitError when a unit
        of the chain is unknown."""
        key = (unit, self.stretch(day))
        cached = self._paths.get(key)
        if cached is not None:
            return cached
        if len(self._paths) > 200_000:
            self._paths.clear()
        path = self._paths[key] = chain(unit, day, self.parent_on)
        return path

    def knows_path(self, unit: str, day: dt.date) -> bool:
        """True when `unit` and every ancestor on `day` are known."""
        try:
            self.path_on(unit, day)
        except UnknownUnitError:
            return False
        return True

    def snapshot(self, day: dt.date) -> Snapshot:
        """The tree as it stood on `day` (built once per stretch and kept until the tree
        changes; the `SNAPSHOTS_KEPT` stretches asked for last are kept)."""
        return Snapshot(day, self, self._shape(day))

    def has_snapshot(self, day: dt.date) -> bool:
        """True when the snapshot of `day` is built already (asking for it costs nothing)."""
        return self._shapes_generation == self.generation and self.stretch(day) in self._shapes

    def _shape(self, day: dt.date) -> Shape:
        self._turn_generation()
        key = self.stretch(day)
        shape = self._shapes.get(key)
        if shape is not None:
            self._shapes.move_to_end(key)
            return shape
        shape = build_shape(self, day, self._like())
        self._keep(key, shape)
        return shape

    def _turn_generation(self) -> None:
        if self._shapes_generation != self.generation:
            if self._shapes:  # the newest shape lends its unchanged child lists to the next
                self._previous = next(reversed(self._shapes.values()))
            self._shapes.clear()
            self._shapes_generation = self.generation

    def _like(self) -> Shape | None:
        return next(reversed(self._shapes.values()), None) or self._previous

    def _keep(self, key: int, shape: Shape) -> None:
        self._previous = None
        self._shapes[key] = shape
        while len(self._shapes) > SNAPSHOTS_KEPT:
            self._shapes.popitem(last=False)

    def prepare(self, day: dt.date) -> PreparedSnapshot:
        """Build the snapshot of `day` without keeping it: only reads the tree, so it may
        run in a worker thread while the event loop serves; `adopt` keeps it."""
        generation = self.generation
        return PreparedSnapshot(generation, self.stretch(day), build_shape(self, day, self._like()))

    def adopt(self, prepared: PreparedSnapshot) -> bool:
        """Keep a prepared snapshot; False (dropped) when the tree changed meanwhile."""
        if prepared.generation != self.generation:
            return False
        self._turn_generation()
        if prepared.stretch not in self._shapes:
            self._keep(prepared.stretch, prepared.shape)
        return True

    def is_active_branch(self, unit: str, day: dt.date) -> bool:
        """True when `unit` is a branch open on `day` whose whole path is known."""
        v = self.version_on(unit, day)
        return (
            v is not None and v.level == BRANCH and v.active_on(day) and self.knows_path(unit, day)
        )


__all__ = [
    "ALWAYS",
    "MAX_DEPTH",
    "SNAPSHOTS_KEPT",
    "PreparedSnapshot",
    "Snapshot",
    "Tree",
    "UnitVersion",
    "UnknownUnitError",
]
