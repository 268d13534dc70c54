"""Issues a step's per-unit effects in chunks while the step's walk goes on.

Every branch's reminder and every unit's feedback report are stored and enqueued chunk by
chunk, before the step commits (`adapters.issued.IssuedStore`): each
chunk is one transaction keyed by unit, so a rerun after a crash issues nothing twice, and
the step never holds more than a chunk or two. One chunk is written while the next one
fills, so PostgreSQL's work overlaps the walk's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from huibao_contracts.cycles import Notification
from huibao_contracts.feedback import FeedbackReport
from huibao_platform import metrics
from huibao_scheduler.domain.plan import PlannedStep
from huibao_scheduler.service_layer.ports import IssuedEffects, IssuedFeedback, Publisher

if TYPE_CHECKING:
    from huibao_platform.outbox import OutboxRecord

CHUNK = 5000
"""Notifications or reports per transaction."""


@dataclass(slots=True)
class Issued:
    """What an `Issuer` has written: seen (this run) and new (not issued by an earlier run)."""

    notifications: int = 0
    notifications_new: int = 0
    feedback: int = 0
    feedback_new: int = 0


class Issuer:
    """Buffers one step's notifications and reports and writes them chunk by chunk.

    `close` writes what is left and waits for the last write; `discard` drops the buffer
    (the step failed: what was written stays written, keyed, and a rerun skips it).
    """

    def __init__(
        self,
        store: IssuedEffects,
        publisher: Publisher,
        step: PlannedStep,
        now: dt.datetime,
        *,
        chunk: int = CHUNK,
        on_written: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._step = step
        self._now = now
        self._chunk = chunk
        self._on_written = on_written
        self._notes: list[tuple[str, OutboxRecord]] = []
        self._kind = ""  # a step streams one kind of notification
        self._reports: list[IssuedFeedback] = []
        self._writing: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.issued = Issued()

    async def notify(self, notes: Iterable[Notification]) -> None:
        """Issue `notes` (one per addressee) with the step."""
        step = self._step.step.value
        for n in notes:
            self._notes.append((n.to, self._publisher.notification_record(n, step, self._now)))
            self._kind = n.kind.value
        if len(self._notes) >= self._chunk:
            await self._flush()

    async def feedback(self, reports: Iterable[tuple[FeedbackReport, tuple[str, ...]]]) -> None:
        """Store and publish `reports` (each with its unit's path from the root)."""
        self._reports.extend(_issued(self._publisher, r, path) for r, path in reports)
        if len(self._reports) >= self._chunk:
            await self._flush()

    async def close(self) -> Issued:
        """Write what is buffered and wait until everything is written."""
        await self._flush()
        async with self._lock:
            await self._wait()
        return self.issued

    async def discard(self) -> None:
        """Drop what is buffered; let the write in progress, if any, finish or fail."""
        self._notes, self._reports = [], []
        writing, self._writing = self._writing, None
        if writing is not None:
            with contextlib.suppress(Exception):
                await writing

    async def _flush(self) -> None:
        async with self._lock:
            notes, reports = self._notes, self._reports
            if not notes and not reports:
                return
            self._notes, self._reports = [], []
            await self._wait()  # one chunk in flight at a time
            self._writing = asyncio.create_task(self._write(notes, reports))
            await asyncio.sleep(0)  # let the write start before the caller goes on

    async def _wait(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing

    async def _write(
        self, notes: list[tuple[str, OutboxRecord]], reports: list[IssuedFeedback]
    ) -> None:
        if reports:
            new = await self._store.feedback(str(self._step.period), reports)
            self.issued.feedback += len(reports)
            self.issued.feedback_new += new
        if notes:
            new = await self._store.notifications(self._step, notes)
            self.issued.notifications += len(notes)
            self.issued.notifications_new += new
            if new:
                metrics.NOTIFICATIONS.labels(self._kind).inc(new)
        self._on_written()


def _issued(publisher: Publisher, report: FeedbackReport, path: tuple[str, ...]) -> IssuedFeedback:
    data = publisher.feedback_json(report)
    return IssuedFeedback(
        unit=report.unit,
        parent=report.parent,
        level=report.level,
        path=path,
        issued_at=report.issued_at,
        report_json=data,
        record=publisher.feedback_record(report, data),
    )
