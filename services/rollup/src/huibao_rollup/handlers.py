"""The rollup's use cases: apply a batch of accepted events, apply org-unit changes.

A batch is one PostgreSQL transaction: the position rows of its partitions are locked and
checked first (a replica overtaken by a rebalance writes nothing), then the stored facts of
its activities are locked, the events folded in memory, and the changed aggregate rows
(one per node, month and shard), facts and positions written together. Kafka hears about
it only after the commit.

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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from huibao_contracts.calendar import CalendarRules
from huibao_contracts.orgunits import OrgUnitChange
from huibao_contracts.rejects import FieldError, Reason
from huibao_platform import metrics
from huibao_platform.logs import get_logger
from huibao_rollup.adapters.kafka_events import EventSource, Polled
from huibao_rollup.adapters.kafka_rejects import RejectSink
from huibao_rollup.adapters.postgres import Repository
from huibao_rollup.domain.aggregation import Deltas, Fold, Outcome, replaced
from huibao_rollup.domain.model import Fact
from huibao_rollup.domain.tree import Tree, UnknownUnitError, Version

log = get_logger(__name__)

UNKNOWN_UNIT_GRACE_SECONDS = 10.0
"""How long a record of a unit the caught-up tree does not know waits before it is
refused (the org-unit change and the event travel on different topics)."""

REATTRIBUTION_SHARD = -1
"""Shard of the aggregate rows written when the tree moves facts between ancestors."""


class _Clock:
    """Seconds spent in each step of a batch."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, step: str) -> None:
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


class FencedError(Exception):
    """Another replica applied past the position this batch expected."""

    def __init__(self, partitions: list[int]) -> None:
        super().__init__(f"partitions moved on by another replica: {partitions}")
        self.partitions = partitions


class Rollup:
    """Applies events and tree changes to PostgreSQL and the in-memory tree."""

    def __init__(self, repo: Repository, tree: Tree, rules: CalendarRules) -> None:
        self.repo = repo
        self.tree = tree
        self.rules = rules
        self.tree_lock = asyncio.Lock()
        """Serialises tree changes with batches, so a batch sees one tree throughout."""
        self._pending: list[tuple[str, dt.date]] = []
        self.stats = ApplyStats()
        self.rejects: RejectSink | None = None
        """Where refused records go (`huibao.activity.rejected`); unset, they are skipped."""

    async def load_tree(self) -> None:
        """Load the stored tree into memory."""
        for v in await self.repo.load_versions():
            self.tree.apply(v)
        log.info("tree_loaded", units=len(self.tree))

    def unknown_units(self, batch: Sequence[Polled]) -> list[str]:
        """Units named by the batch whose path the tree cannot resolve yet."""
        return sorted(
            {
                p.event.unit
                for p in batch
                if p.event is not None and not self.tree.knows_path(p.event.unit, p.event.date)
            }
        )

    async def apply_events(
        self,
        batch: Sequence[Polled],
        *,
        source: EventSource,
        generation: int,
        catch_up: Callable[[], Awaitable[bool | None]],
        retry_seconds: float,
        stop: asyncio.Event,
    ) -> dict[int, tuple[int, str]] | None:
        """Apply one batch; the positions committed, or None when the batch was dropped
        (a rebalance or another replica overtook it: the source was repositioned) or is
        still waiting for units when `stop` is set.

        An event whose unit the tree cannot place waits for the org-unit changes; once the
        tree has read every change published (`catch_up` answers True) and the unit is
        still unknown `UNKNOWN_UNIT_GRACE_SECONDS` after the batch arrived, the record is
        refused as `unknown_unit` (reporting never accepts one: something else wrote it),
        so that it cannot stop its partition."""
        if not await self._wait_for_units(batch, catch_up, retry_seconds, stop):
            return None
        refused = [p for p in batch if p.refused]
        if refused and self.rejects is not None:  # sent before the positions move past them
            await self.rejects.publish(refused)
        started = time.perf_counter()
        positions: dict[int, tuple[int, str]] = {}
        for p in batch:
            positions[p.partition] = (p.offset, p.key)
        events = [p.event for p in batch if p.event is not None]
        async with source.lock:
            if source.generation != generation or not all(source.owns(p) for p in positions):
                await source.reposition()
                return None
            expected = {p: source.expected(p) for p in positions}
            clock = _Clock()
            try:
                async with self.tree_lock:
                    async with self.repo.unit_of_work() as uow:
                        if fenced := await uow.fence(source.topic, expected):
                            raise FencedError(fenced)
                        stored = await uow.lock_facts([e.activity_id for e in events])
                        clock.lap("read")
                        fold = Fold(self.rules, self.tree, stored)
                        outcomes = Counter(fold.apply(e) for e in events)
                        rows = fold.deltas.rows()
                        changed = fold.changed.values()
                        clock.lap("fold")
                        await uow.write_facts(
                            [f for f in changed if f.activity_id not in stored],
                            [f for f in changed if f.activity_id in stored],
                        )
                        clock.lap("facts")
                        await uow.add_rows(rows)
                        clock.lap("agg")
                        await uow.save_positions(source.topic, positions)
                    clock.lap("commit")
            except FencedError as e:
                log.warning("batch_fenced", partitions=e.partitions)
                await source.reposition(e.partitions)
                return None
            source.applied(positions)
        elapsed = time.perf_counter() - started
        self.stats.add(len(batch), len(fold.changed), len(rows), clock.laps)
        metrics.BATCH_SIZE.observe(len(batch))
        metrics.BATCH_DURATION.observe(elapsed)
        metrics.EVENTS_APPLIED.inc(outcomes[Outcome.APPLIED] + outcomes[Outcome.CORRECTED])
        metrics.CORRECTIONS.inc(outcomes[Outcome.CORRECTED])
        metrics.DUPLICATES.inc(outcomes[Outcome.DUPLICATE])
        log.info(
            "batch_applied",
            records=len(batch),
            rows=len(rows),
            duration_ms=round(elapsed * 1000, 1),
            **{f"{k}_ms": round(v * 1000, 1) for k, v in clock.laps.items()},
            partitions=sorted(positions),
            **{str(k): v for k, v in outcomes.items()},
        )
        return positions

    async def _wait_for_units(
        self,
        batch: Sequence[Polled],
        catch_up: Callable[[], Awaitable[bool | None]],
        retry_seconds: float,
        stop: asyncio.Event,
    ) -> bool:
        """Wait until the tree places every event's unit, refusing those it cannot place
        once caught up and past the grace time; False when `stop` was set meanwhile."""
        waiting_since = time.monotonic()
        while unknown := self.unknown_units(batch):
            if stop.is_set():
                return False
            log.warning("unknown_units", count=len(unknown), units=unknown[:10])
            caught_up = await catch_up()
            if not self.unknown_units(batch):
                break
            if caught_up and time.monotonic() - waiting_since >= UNKNOWN_UNIT_GRACE_SECONDS:
                self._refuse_unknown(batch)
                continue
            await asyncio.sleep(retry_seconds)
        return True

    def _refuse_unknown(self, batch: Sequence[Polled]) -> None:
        for p in batch:
            e = p.event
            if e is not None and not self.tree.knows_path(e.unit, e.date):
                p.event = None
                p.refused = [
                    FieldError(
                        field="subject",
                        reason=Reason.UNKNOWN_UNIT,
                        message=f"the org-unit tree has no path of {e.unit} on {e.date}",
                    )
                ]

    async def apply_changes(self, changes: Sequence[OrgUnitChange]) -> None:
        """Store tree changes and re-attribute the facts a move or merge affects."""
        async with self.tree_lock:
            versions = [Version.of(c) for c in changes]
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
            async with self.repo.unit_of_work() as uow:
                await uow.upsert_versions(versions)
            while self._pending:
                unit, since = self._pending[0]
                await self._reattribute(unit, since)
                self._pending.pop(0)

    async def _reattribute(self, unit: str, since: dt.date) -> None:
        # from the first of the month: a Party Day dated before `since` counts through the
        # tree on its month's Party Day, which may lie after it
        async with self.repo.unit_of_work() as uow:
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


def _expectation_changed(old: Version, new: Version) -> bool:
    """True when `new` may change whether the unit is expected for a Party Day: another
    level, other open or close dates, or a version taking effect before every earlier one
    (the unit now exists on days it did not)."""
    before, after = (old.level, old.opened, old.closed), (new.level, new.opened, new.closed)
    return before != after or new.effective < old.effective
