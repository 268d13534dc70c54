"""Runs cycle steps: every due step in calendar order, or one step on demand.

One asyncio lock per process serialises the ticker, `PUT /v1/clock` and manual runs, so a
clock move answers with exactly the transitions it caused. Across processes a lease keeps
two replicas from working on one cycle at once, and the store's transaction decides who
runs a step; the loser skips it silently (it runs at a later tick if the winner died).

The per-unit effects (every branch's reminder, the quarterly feedback) are issued in chunks
while the step's walk goes on, before the step commits (see `issuer.Issuer`): each is
stored and published exactly once, keyed by unit, and the transition follows the last chunk.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from huibao_contracts.calendar import CalendarRules
from huibao_contracts.cycles import CycleKind, CycleState, CycleTransition
from huibao_contracts.periods import Period
from huibao_platform import metrics
from huibao_platform.logs import get_logger
from huibao_scheduler.domain.machine import due_across, is_skipped, next_step, transition
from huibao_scheduler.domain.plan import PlannedStep, cycles_until, plan_for
from huibao_scheduler.errors import CycleClosedError, RollupUnavailableError, StepConflictError
from huibao_scheduler.service_layer.effect_gatherer import EffectGatherer, Effects
from huibao_scheduler.service_layer.issuer import CHUNK, Issuer
from huibao_scheduler.service_layer.ports import Clock, CycleRow, Cycles, IssuedEffects, Publisher

log = get_logger(__name__)


@dataclass(slots=True)
class RunResult:
    """What one pass over the due steps did."""

    now: dt.datetime
    transitions: list[CycleTransition] = field(default_factory=list)
    pending: int = 0
    error: str | None = None


class CycleRunner:
    """The scheduler's use cases: run due steps, run one step now, report cycle states."""

    def __init__(
        self,
        *,
        store: Cycles,
        issued: IssuedEffects,
        publisher: Publisher,
        effects: EffectGatherer,
        rules: CalendarRules,
        clock: Clock,
        default_first_month: Callable[[dt.datetime], Period],
        on_committed: Callable[[], None] = lambda: None,
        chunk: int = CHUNK,
    ) -> None:
        self._store = store
        self._issued = issued
        self._publisher = publisher
        self._effects = effects
        self._rules = rules
        self.clock = clock
        self._default_first = default_first_month
        self._on_committed = on_committed
        self._chunk = chunk
        self._first: Period | None = None
        self.lock = asyncio.Lock()

    async def first_month(self) -> Period:
        """The first month scheduled (fixed in PostgreSQL at the very first start)."""
        if self._first is None:
            self._first = await self._store.first_month(self._default_first(self.clock.now()))
        return self._first

    async def run_due(self) -> RunResult:
        """Run every step due at the clock's now, in order; stop at the first failure."""
        async with self.lock:
            return await self.run_due_locked()

    async def run_due_locked(self) -> RunResult:
        """`run_due` for a caller that already holds `lock`."""
        now = self.clock.now()
        rows = {(c.kind, c.period): c for c in await self._store.cycles()}
        cycles = []
        for kind, period in cycles_until(self._rules, await self.first_month(), now):
            row = rows.get((kind, period))
            if row is None or row.state is not CycleState.CLOSED:
                cycles.append((plan_for(self._rules, kind, period), row.last_step if row else None))
        due = due_across(cycles, now)
        metrics.CYCLE_OVERDUE.set(len(due))
        result = RunResult(now=now, pending=len(due))
        for step in due:
            try:
                done = await self._run(step, now)
            except RollupUnavailableError as e:  # retried next tick; a store failure fails all
                result.error = str(e)
                log.warning(
                    "step_failed",
                    kind=step.kind,
                    period=str(step.period),
                    step=step.step,
                    error=str(e),
                )
                break
            result.pending -= 1
            metrics.CYCLE_OVERDUE.set(result.pending)
            if done is not None:
                result.transitions.append(done)
        await self._update_state_gauge()
        return result

    async def run_next(self, kind: CycleKind, period: Period) -> CycleTransition:
        """Run the next step of one cycle now, due or not (the manual control)."""
        plan = plan_for(self._rules, kind, period)
        async with self.lock:
            rows = {(c.kind, c.period): c for c in await self._store.cycles()}
            row = rows.get((kind, period))
            step = next_step(plan, row.last_step if row else None)
            if step is None:
                raise CycleClosedError(f"the {kind.value} cycle {period} is closed")
            done = await self._run(step, self.clock.now())
            if done is None:
                raise StepConflictError(f"{kind.value}:{period}:{step.step} ran elsewhere just now")
            await self._update_state_gauge()
            return done

    async def cycles(self) -> list[tuple[CycleRow | None, PlannedStep | None, Period, CycleKind]]:
        """Every cycle scheduled so far with its next step (None once closed)."""
        now = self.clock.now()
        rows = {(c.kind, c.period): c for c in await self._store.cycles()}
        keys = set(rows) | set(cycles_until(self._rules, await self.first_month(), now))
        out = []
        for kind, period in sorted(keys):
            row = rows.get((kind, period))
            nxt = next_step(plan_for(self._rules, kind, period), row.last_step if row else None)
            out.append((row, nxt, period, kind))
        return out

    async def _run(self, step: PlannedStep, now: dt.datetime) -> CycleTransition | None:
        if await self._store.step_done(step):
            return None
        async with self._store.lease(step) as held:
            if not held:
                log.info("step_busy", kind=step.kind, period=str(step.period), step=step.step)
                return None
            if await self._store.step_done(step):
                return None
            return await self._run_leased(step, now)

    async def _run_leased(self, step: PlannedStep, now: dt.datetime) -> CycleTransition | None:
        done = transition(step, now)
        issuer = Issuer(
            self._issued,
            self._publisher,
            step,
            now,
            chunk=self._chunk,
            on_written=self._on_committed,
        )
        if is_skipped(step, now):
            effects = Effects()
        else:
            try:
                effects = await self._effects.gather(step, now, issuer)
            except BaseException:
                await issuer.discard()
                raise
        issued = await issuer.close()
        publisher = self._publisher
        records = [publisher.transition_record(done)]
        records += [
            publisher.notification_record(n, step.step.value, now) for n in effects.notifications
        ]
        plan = plan_for(self._rules, step.kind, step.period)
        previous = plan.steps[step.seq - 1].step if step.seq else None
        committed = await self._store.commit_step(
            step, previous, done, records=records, notifications=len(effects.notifications)
        )
        if not committed:
            return None
        self._on_committed()
        await self._issued.forget()
        for n in effects.notifications:
            metrics.NOTIFICATIONS.labels(n.kind.value).inc()
        log.info(
            "cycle_step",
            kind=step.kind,
            period=str(step.period),
            step=step.step,
            state=done.state,
            skipped=done.skipped,
            notifications=len(effects.notifications) + issued.notifications,
            notifications_new=len(effects.notifications) + issued.notifications_new,
            feedback=issued.feedback,
            feedback_new=issued.feedback_new,
            due_at=step.due_at.isoformat(),
        )
        return done

    async def _update_state_gauge(self) -> None:
        latest: dict[CycleKind, CycleRow] = {}
        for c in await self._store.cycles():
            if c.kind not in latest or c.period > latest[c.kind].period:
                latest[c.kind] = c
        for kind, row in latest.items():
            for state in CycleState:
                metrics.CYCLE_STATE.labels(kind.value, state.value).set(int(state is row.state))
