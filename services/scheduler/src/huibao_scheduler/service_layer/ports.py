"""What the use cases need from the outside, as protocols; `adapters/` holds the real ones.

The use cases (`cycle_runner`, `effect_gatherer`, `issuer`) import these and never a
concrete adapter; `bootstrap` hands them PostgreSQL stores, the CloudEvent publisher, the
rollup's HTTP client and a clock. The values that cross a port (a stored cycle, a stored
feedback report, a report ready to issue) are defined here too. An outbox record is opaque
to the use cases: the publisher makes it, the stores enqueue it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from huibao_contracts.cycles import CycleKind, CycleState, CycleTransition, Notification
from huibao_contracts.feedback import FeedbackReport
from huibao_contracts.periods import Period
from huibao_scheduler.domain.plan import PlannedStep, Step
from huibao_scheduler.domain.units import Metrics, Unit

if TYPE_CHECKING:
    from huibao_platform.outbox import OutboxRecord

Listed = tuple[Unit, dict[str, Metrics]]
"""A unit with its metrics by period."""


@dataclass(frozen=True, slots=True)
class CycleRow:
    """The stored state of one cycle."""

    kind: CycleKind
    period: Period
    state: CycleState
    last_step: Step | None
    updated_at: Any


@dataclass(frozen=True, slots=True)
class StoredFeedback:
    """A unit's stored feedback and the ids from its root down to it."""

    path: tuple[str, ...]
    report: dict[str, Any]


@dataclass(frozen=True, slots=True)
class IssuedFeedback:
    """One unit's report ready to store: its JSON (as published) and its outbox record."""

    unit: str
    parent: str | None
    level: str
    path: tuple[str, ...]
    issued_at: dt.datetime
    report_json: bytes
    record: OutboxRecord


class Clock(Protocol):
    """The scheduler's now (the system clock, or a manual one moved by `PUT /v1/clock`)."""

    def now(self) -> dt.datetime: ...


class Cycles(Protocol):
    """The cycle store: states, the step ledger (exactly once), the stored feedback."""

    async def first_month(self, default: Period) -> Period:
        """The first month ever scheduled: `default` at the first start, then the stored one."""
        ...

    async def cycles(self) -> list[CycleRow]:
        """Every cycle stored so far."""
        ...

    def lease(self, step: PlannedStep) -> AbstractAsyncContextManager[bool]:
        """Hold `step`'s cycle against other replicas; yields False when another holds it."""
        ...

    async def step_done(self, step: PlannedStep) -> bool:
        """Whether `step` has run (here or on another replica)."""
        ...

    async def commit_step(
        self,
        step: PlannedStep,
        previous: Step | None,
        done: CycleTransition,
        *,
        records: Sequence[OutboxRecord],
        notifications: int = 0,
    ) -> bool:
        """Record `step` and enqueue `records` at once: False when another replica ran it."""
        ...

    async def feedback(self, unit: str, quarter: str) -> StoredFeedback | None:
        """The stored feedback of `unit` for `quarter`, or None."""
        ...


class IssuedEffects(Protocol):
    """Where a step's per-unit effects are written in chunks, each unit at most once."""

    async def notifications(
        self, step: PlannedStep, rows: Sequence[tuple[str, OutboxRecord]]
    ) -> int:
        """Enqueue the (addressee, record) rows `step` has not issued yet; answers how many."""
        ...

    async def feedback(self, quarter: str, rows: Sequence[IssuedFeedback]) -> int:
        """Store and enqueue the reports not stored yet; answers how many."""
        ...

    async def forget(self) -> None:
        """Drop the notification keys of committed steps (best effort)."""
        ...


class Publisher(Protocol):
    """Makes the outbox records of what the scheduler publishes (CloudEvents on Kafka)."""

    def transition_record(self, t: CycleTransition) -> OutboxRecord: ...

    def notification_record(
        self, n: Notification, step: str, time: dt.datetime
    ) -> OutboxRecord: ...

    def feedback_json(self, report: FeedbackReport) -> bytes: ...

    def feedback_record(
        self, report: FeedbackReport, data: bytes | None = None
    ) -> OutboxRecord: ...


class RollupReader(Protocol):
    """The rollup's query API as the steps read it; failures raise `RollupUnavailableError`."""

    async def roots(self) -> list[Unit]:
        """The roots of every tree the rollup knows."""
        ...

    async def summary(self, node: str, period: str) -> Metrics:
        """One node's metrics for `period`."""
        ...

    async def children(self, parent: Unit, period: str) -> list[tuple[Unit, Metrics]]:
        """Every child of `parent` with its metrics for `period`."""
        ...

    async def listing(self, parent: Unit, periods: Sequence[str]) -> list[Listed]:
        """Every child of `parent` with its metrics for each of `periods`."""
        ...

    async def root_figures(self, roots: Sequence[Unit], periods: Sequence[str]) -> list[Listed]:
        """The roots, each with its metrics for every one of `periods`."""
        ...

    def missing_pages(
        self, node: str, period: str
    ) -> AsyncIterator[tuple[dict[str, Any], list[Unit]]]:
        """The Party Day completeness figures of `node` for a month, with each page of its
        missing branches."""
        ...
