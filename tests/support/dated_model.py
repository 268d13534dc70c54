"""An independent model of the dated org-unit tree, and random registry sequences.

`Model` keeps every unit's parent, name and member count as plain timelines (value valid
from a date) and answers paths and labels on any day from the rules written in
docs/architecture.md ("History no import rewrites"), not from the code under test.
`run_sequence` applies a random sequence of imports (renames and member counts with and
without an effective date, dated re-parents, closings, unchanged re-imports), moves,
merges and closes through a `Driver` (reporting's planners in process, or the HTTP API)
and keeps the model in step with what the registry accepted.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from huibao_contracts.orgunits import OrgUnit

ALWAYS = dt.date.min
T = TypeVar("T")
START = dt.date(2026, 1, 1)


def at(timeline: Mapping[dt.date, T], day: dt.date) -> T:
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

    def latest(self, u: str) -> OrgUnit:
        name, members = self.label(u, dt.date.max)
        parent = at(self.parents[u], dt.date.max)
        return OrgUnit(
            id=u,
            name=name,
            level=self.level[u],  # type: ignore[arg-type]
            parent=parent,
            members=members,
            closed=self.closed[u],
        )

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

    def merge(self, u: str, into: str, when: dt.date) -> None:
        """`u` closes and goes into `into`; its children not closed by then move there."""
        for c in self.parents:
            closed = self.closed[c]
            if at(self.parents[c], when) == u and (closed is None or closed > when):
                self.parents[c][when] = into
        self.closed[u], self.merged[u] = when, into

    def merged_away(self, u: str, day: dt.date) -> bool:
        closed = self.closed[u]
        return u in self.merged and closed is not None and closed <= day

    def parent(self, u: str, day: dt.date) -> str | None:
        p = self.merged[u] if self.merged_away(u, day) else at(self.parents[u], day)
        for _ in range(64):
            if p is None or not self.merged_away(p, day):
                break
            p = self.merged[p]
        else:
            raise AssertionError(f"merges of {u} form a cycle on {day}")
        return p

    def path(self, u: str, day: dt.date) -> tuple[str, ...]:
        out = [u]
        while (p := self.parent(out[0], day)) is not None:
            assert p not in out, f"the parents of {u} form a cycle on {day}"
            out.insert(0, p)
        return tuple(out)

    def label(self, u: str, day: dt.date) -> tuple[str, int]:
        return at(self.labels[u], day)

    def active(self, u: str, day: dt.date) -> bool:
        closed = self.closed[u]
        return closed is None or day < closed

    def branches_under(self, node: str, day: dt.date) -> list[str]:
        """Branches active on `day` whose path then runs through `node`."""
        return [
            b
            for b in self.level
            if self.level[b] == "branch" and self.active(b, day) and node in self.path(b, day)
        ]


def initial_tree(p: str = "") -> list[OrgUnit]:
    """A city `{p}c`, counties `{p}k1..3`, townships `{p}t1..6`, branches `{p}b01..18`."""
    units = [OrgUnit(id=f"{p}c", name="市", level="city")]  # type: ignore[arg-type]
    for k in range(1, 4):
        units.append(OrgUnit(id=f"{p}k{k}", name=f"县{k}", level="county", parent=f"{p}c"))  # type: ignore[arg-type]
    for t in range(1, 7):
        county = f"{p}k{(t + 1) // 2}"
        units.append(OrgUnit(id=f"{p}t{t}", name=f"镇{t}", level="township", parent=county))  # type: ignore[arg-type]
    for b in range(1, 19):
        units.append(
            OrgUnit(
                id=f"{p}b{b:02d}",
                name=f"支部{b}",
                level="branch",  # type: ignore[arg-type]
                parent=f"{p}t{(b + 2) // 3}",
                members=10 + b,
            )
        )
    return units


class Driver(Protocol):
    """What a sequence needs of a registry."""

    async def import_(
        self, units: list[OrgUnit], effectives: list[dt.date | None]
    ) -> dict[str, int] | None:
        """Import rows; the counts, or None when refused."""

    async def move(self, unit: str, parent: str, when: dt.date) -> bool:
        """True when a move was published (False: refused or nothing to do)."""

    async def merge(self, unit: str, into: str, when: dt.date) -> bool:
        """True when a merge was published."""

    async def close(self, unit: str, when: dt.date) -> bool:
        """True when a close was published."""

    async def latest(self, unit: str) -> OrgUnit:
        """The unit as stored (its latest state)."""


async def run_sequence(
    driver: Driver,
    model: Model,
    rng: random.Random,
    units: list[OrgUnit],
    today: dt.date,
    steps: int = 30,
) -> Counter[str]:
    """Apply `steps` random operations to the tree `units` (already imported and in
    `model`), keeping the model in step with what the registry accepted; how many of
    each kind were accepted."""
    accepted: Counter[str] = Counter()
    counties = [u.id for u in units if u.level == "county"]
    townships = [u.id for u in units if u.level == "township"]
    branches = [u.id for u in units if u.level == "branch"]

    def day() -> dt.date:
        return START + dt.timedelta(days=rng.randint(0, 364))

    for step in range(steps):
        op = rng.choice(["rename", "rename", "move", "move", "reparent", "merge", "close", "same"])
        u = rng.choice(townships + branches + branches)
        level = model.level[u]
        if op == "rename":
            when = day() if rng.random() < 0.7 else None
            name, members = f"{u}-{step}", rng.randint(0, 60)
            row = (await driver.latest(u)).model_copy(update={"name": name, "members": members})
            if await driver.import_([row], [when]) is not None:
                model.row(row, when or today)
                accepted[op] += 1
        elif op in ("move", "reparent"):
            parent, when = rng.choice(counties if level == "township" else townships), day()
            if op == "move":
                if await driver.move(u, parent, when):
                    model.parents[u][when] = parent
                    accepted[op] += 1
            else:
                stored = await driver.latest(u)
                row = stored.model_copy(update={"parent": parent})
                if row.parent != stored.parent and await driver.import_([row], [when]) is not None:
                    model.row(row, when)
                    accepted[op] += 1
        elif op == "merge":
            into, when = rng.choice(townships if level == "township" else branches), day()
            if await driver.merge(u, into, when):
                model.merge(u, into, when)
                accepted[op] += 1
        elif op == "close":
            when = day()
            if rng.random() < 0.5:
                if await driver.close(u, when):
                    model.closed[u] = when
                    accepted[op] += 1
            elif level == "branch" and u not in model.merged:
                row = (await driver.latest(u)).model_copy(update={"closed": when})
                if row.opened is None or row.opened < when:
                    assert await driver.import_([row], [None]) is not None
                    model.row(row, today)
                    accepted[op] += 1
        else:  # a re-import of what is stored changes nothing
            rows = [await driver.latest(x) for x in model.level]
            counts = await driver.import_(rows, [None] * len(rows))
            assert counts is not None
            assert (counts["created"], counts["updated"]) == (0, 0), f"step {step}: {counts}"
            accepted[op] += 1
    return accepted
