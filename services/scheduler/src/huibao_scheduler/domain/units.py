"""Org units as the scheduler sees them through the rollup API: values, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

Metrics = Mapping[str, float | None]
"""Metric name → value (ratios may be None when their denominator is 0)."""


@dataclass(frozen=True, slots=True)
class Unit:
    """An org unit: `path` lists the ids from the root down to the unit itself."""

    id: str
    name: str
    level: str
    parent: str | None = None
    path: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Completeness:
    """Party Day completeness of one unit for one month."""

    period: str
    expected: int
    held: int
    on_time: int
    late: int
    unexpected: int = 0
    """Reports of units the rollup did not expect that month (not in `held`)."""

    @property
    def missing(self) -> int:
        """Expected branches that have not reported: the rollup counts as held only the
        branches it expected, so this is its completeness list's length (the clamp only
        guards against a rollup that does not)."""
        return max(self.expected - self.held, 0)

    @classmethod
    def from_metrics(cls, period: str, metrics: Metrics) -> Completeness:
        """Read the figures from a node's metrics (the rollup summary or children rows)."""
        return cls(
            period=period,
            expected=_int(metrics.get("party_day.expected")),
            held=_int(metrics.get("party_day.held")),
            on_time=_int(metrics.get("party_day.on_time")),
            late=_int(metrics.get("party_day.late")),
            unexpected=_int(metrics.get("party_day.unexpected")),
        )


def _int(value: float | None) -> int:
    return int(value or 0)


@dataclass(slots=True)
class Tree:
    """Units found by walking the rollup's children listings, with their figures by period."""

    roots: list[str] = field(default_factory=list)
    units: dict[str, Unit] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    figures: dict[tuple[str, str], Metrics] = field(default_factory=dict)

    def add(self, unit: Unit, period: str | None = None, metrics: Metrics | None = None) -> None:
        """Record a unit (under its parent) and, optionally, its metrics for `period`."""
        if unit.id not in self.units:
            self.units[unit.id] = unit
            if unit.parent is None:
                self.roots.append(unit.id)
            else:
                self.children.setdefault(unit.parent, []).append(unit.id)
        if period is not None and metrics is not None:
            self.figures[(unit.id, period)] = metrics

    def of_level(self, level: str) -> list[Unit]:
        """Every unit of `level`, in walk order."""
        return [u for u in self.units.values() if u.level == level]
