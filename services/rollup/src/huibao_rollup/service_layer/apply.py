"""The rollup's apply use cases: a batch of accepted events, and org-unit changes.

`Applier.apply` takes the events of a batch, the position each of its partitions reaches,
and the position each must stand at; it answers `Applied` or `Fenced`. It knows nothing
of Kafka: the consumer loop (`huibao_rollup.entrypoints.kafka`) fetches, locks against
rebalances, repositions and acknowledges.

A batch is one PostgreSQL transaction: the position rows of its partitions are locked and
checked first (`Fenced` when another replica applied past them: nothing is written), then
the stored facts of its activities are locked, the events folded in memory, and the
changed aggregate rows (one per node, month and shard), facts and positions written
together. The caller tells Kafka only after the commit.

A tree change that moves a unit, or changes whether it is expected to hold the Party Day
(its level, its open or close dates), re-attributes, in one transaction, the facts counted
through that unit and dated on or after the first of the month of the change's effective
date (a Party Day counts through the tree on its month's Party Day, which may lie after
its date): each fact's path, and a Party Day's held or unexpected count.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from huibao_contracts.calendar import CalendarRules
from huibao_contracts.class_hours import DEFAULT_CLASS_HOURS, ClassHourRules
from huibao_contracts.orgunits import OrgUnitChange
from huibao_platform import metrics
from huibao_platform.logs import get_logger
from huibao_rollup.domain.aggregation import Deltas, Fold, Outcome, replaced
from huibao_rollup.domain.model import ActivityEvent, Fact
from huibao_rollup.domain.tree import Tree, UnitVersion, UnknownUnitError
from huibao_rollup.errors import FencedError
from huibao_rollup.service_layer.ports import Positions, Storage

log = get_logger(__name__)

REATTRIBUTION_SHARD = -1
"""Shard of the aggregate rows written when the tree moves facts between ancestors."""


class LapTimer:
    """Seconds spent in each step of a batch."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, step: str) -> None:
        """End the step `step` now; the next one starts."""
        now = time.perf_counter()
        self.laps[step] = now - self._last
        self._last = now


@dataclass
class ApplyStats:
    """What the batches applied so far added up to (for benchmarks and the log)."""

    batches: int = 0
    records: int = 0
    facts: int = 0
    rows: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    first_records: int = 0
    """Records of the first batch, which `first_done` (perf_counter) finished."""
    first_done: float = 0.0
    last_done: float = 0.0

    def add(self, records: int, facts: int, rows: int, laps: dict[str, float]) -> None:
        """Count one committed batch."""
        self.last_done = time.perf_counter()
        if not self.batches:
            self.first_records, self.first_done = records, self.last_done
        self.batches += 1
        self.records += records
        self.facts += facts
        self.rows += rows
        for step, seconds in laps.items():
            self.seconds[step] = self.seconds.get(step, 0.0) + seconds


@dataclass(frozen=True, slots=True)
class Applied:
    """The batch is committed: its positions are what the next batch must find."""

    positions: Positions


@dataclass(frozen=True, slots=True)
class Fenced:
    """Another replica applied past these partitions' expected positions: nothing written."""

    partitions: list[int]


ApplyResult = Applied | Fenced


class Applier:
    """Applies events and tree changes to storage and the in-memory tree."""

    def __init__(
        self,
        storage: Storage,
        tree: Tree,
        rules: CalendarRules,
        class_hours: ClassHourRules = DEFAULT_CLASS_HOURS,
    ) -> None:
        self.storage = storage
        self.tree = tree
        self.rules = rules
        self.class_hours = class_hours
        self.tree_lock = asyncio.Lock()
        """Serialises tree changes with batches, so a batch sees one tree throughout."""
        self._pending: list[tuple[str, dt.date]] = []
        self.stats = ApplyStats()

    async def load_tree(self) -> None:
        """Load the stored tree into memory."""
        for v in await self.storage.load_versions():
            self.tree.apply(v)
        log.info("tree_loaded", units=len(self.tree))

    async def apply(
        self,
        stream: str,
        events: Sequence[ActivityEvent],
        positions: Positions,
        expected: Mapping[int, int],
        *,
        records: int | None = None,
    ) -> ApplyResult:
        """Apply `events` and move the positions of `stream` to `positions`, in one
        transaction, if every partition still stands at its `expected` offset (the last
        one applied, -1 for none); `Fenced` (nothing written) otherwise. `records` counts
        the batch's records for the statistics (refused ones included; `events` when None).
        Every event's unit must be placed by the tree (StorageUnavailableError when the
        database is away: the batch may be retried as it is)."""
        records = len(events) if records is None else records
        started = time.perf_counter()
        timer = LapTimer()
        try:
            async with self.tree_lock:
                async with self.storage.unit_of_work() as uow:
                    if fenced := await uow.fence(stream, expected):
                        raise FencedError(fenced)  # noqa: TRY301 (rolls the transaction back)
                    stored = await uow.lock_facts([e.activity_id for e in events])
                    timer.lap("read")
                    fold = Fold(self.rules, self.tree, stored, self.class_hours)
                    outcomes = Counter(fold.apply(e) for e in events)
                    rows = fold.deltas.rows()
                    changed = fold.changed.values()
                    timer.lap("fold")
                    await uow.write_facts(
                        [f for f in changed if f.activity_id not in stored],
                        [f for f in changed if f.activity_id in stored],
                    )
                    timer.lap("facts")
                    await uow.add_rows(rows)
                    timer.lap("agg")
                    await uow.save_positions(stream, positions)
                timer.lap("commit")
        except FencedError as e:
            log.warning("batch_fenced", partitions=e.partitions)
            return Fenced(e.partitions)
        elapsed = time.perf_counter() - started
        self.stats.add(records, len(fold.changed), len(rows), timer.laps)
        metrics.BATCH_SIZE.observe(records)
        metrics.BATCH_DURATION.observe(elapsed)
        metrics.EVENTS_APPLIED.inc(outcomes[Outcome.APPLIED] + outcomes[Outcome.CORRECTED])
        metrics.CORRECTIONS.inc(outcomes[Outcome.CORRECTED])
        metrics.DUPLICATES.inc(outcomes[Outcome.DUPLICATE])
        log.info(
            "batch_applied",
            records=records,
            rows=len(rows),
            duration_ms=round(elapsed * 1000, 1),
            **{f"{k}_ms": round(v * 1000, 1) for k, v in timer.laps.items()},
            partitions=sorted(positions),
            **{str(k): v for k, v in outcomes.items()},
        )
        return Applied(positions)

    async def apply_changes(self, changes: Sequence[OrgUnitChange]) -> None:
        """Store tree changes and re-attribute the facts a move or merge affects."""
        async with self.tree_lock:
            versions = [UnitVersion.of(c) for c in changes]
            for v in versions:
                existing = self.tree.current(v.unit, v.effective)
                if (
                    self.tree.apply(v)
                    and existing is not None
                    and (
                        v.kind in ("move", "merge")
                        or (existing.parent, existing.merged_into) != (v.parent, v.merged_into)
                        or _expectation_changed(existing, v)
                    )
                ):
                    self._pending.append((v.unit, v.effective))
            async with self.storage.unit_of_work() as uow:
                await uow.upsert_versions(versions)
            while self._pending:
                unit, since = self._pending[0]
                await self._reattribute(unit, since)
                self._pending.pop(0)

    async def _reattribute(self, unit: str, since: dt.date) -> None:
        # from the first of the month: a Party Day dated before `since` counts through the
        # tree on its month's Party Day, which may lie after it
        async with self.storage.unit_of_work() as uow:
            facts = await uow.lock_facts_through(unit, since.replace(day=1))
            deltas = Deltas()
            moved: list[Fact] = []
            for f in facts:
                try:
                    now = replaced(self.rules, self.tree, f)
                except UnknownUnitError:
                    continue
                if now is not f:
                    deltas.add(f.path, f.date, f.contribution, -1, REATTRIBUTION_SHARD)
                    deltas.add(now.path, f.date, now.contribution, 1, REATTRIBUTION_SHARD)
                    moved.append(now)
            await uow.add_rows(deltas.rows())
            await uow.write_facts([], moved)
        log.info("facts_reattributed", unit=unit, since=str(since), facts=len(moved))


def _expectation_changed(old: UnitVersion, new: UnitVersion) -> bool:
    """True when `new` may change whether the unit is expected for a Party Day: another
    level, other open or close dates, or a version taking effect before every earlier one
    (the unit now exists on days it did not)."""
    before, after = (old.level, old.opened, old.closed), (new.level, new.opened, new.closed)
    return before != after or new.effective < old.effective
