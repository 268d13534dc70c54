"""What each step needs from the rollup and what it sends: gathered before the transaction.

The not-yet-reported reminder and the escalation also set `huibao_cycle_branches` (the
month's completeness summed over roots) for the dashboards.

Steps without notifications (opened, deadline_passed, the feedback cycle's closed) need no
data. A skipped step gathers nothing. Any rollup failure propagates, and the step is retried.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field

from huibao_contracts.calendar import CalendarRules
from huibao_contracts.cycles import CycleKind, Notification
from huibao_contracts.feedback import FeedbackReport
from huibao_contracts.periods import Period
from huibao_platform import metrics
from huibao_scheduler.adapters.rollup import RollupClient
from huibao_scheduler.domain import messages
from huibao_scheduler.domain.feedback import build_reports
from huibao_scheduler.domain.plan import PlannedStep, Step
from huibao_scheduler.domain.units import Unit

_DISPATCH_LEVELS = frozenset({"city", "county"})


@dataclass(slots=True)
class Effects:
    """The notifications and feedback reports of one step."""

    notifications: list[Notification] = field(default_factory=list)
    feedback: list[tuple[FeedbackReport, tuple[str, ...]]] = field(default_factory=list)


class EffectGatherer:
    """Asks the rollup for what a step needs and builds its notifications and reports."""

    def __init__(self, rollup: RollupClient, rules: CalendarRules) -> None:
        self._rollup = rollup
        self._rules = rules

    async def gather(self, step: PlannedStep, now: dt.datetime) -> Effects:
        """The effects of `step` running (not skipped) at `now`."""
        p = step.period
        if step.kind is CycleKind.FEEDBACK:
            return await self._feedback(p, now) if step.step is Step.ISSUED else Effects()
        if step.step is Step.UPCOMING_REMINDER:
            return await self._upcoming(p)
        if step.step is Step.OVERDUE_REMINDER:
            missing = await self._missing(p)
            return Effects([messages.not_reported(self._rules, p, u) for u in missing])
        if step.step is Step.ESCALATED:
            return Effects(messages.escalations(p, await self._missing(p)))
        if step.step is Step.CLOSED:
            return await self._dispatch(p)
        return Effects()

    async def _upcoming(self, month: Period) -> Effects:
        tree = await self._rollup.walk(await self._rollup.roots(), [str(month)])
        return Effects([messages.upcoming(self._rules, month, u) for u in tree.of_level("branch")])

    async def _missing(self, month: Period) -> list[Unit]:
        roots = await self._rollup.roots()
        answers = await asyncio.gather(
            *(self._rollup.completeness(r.id, str(month)) for r in roots)
        )
        for state in ("expected", "held", "on_time", "late", "missing"):
            total = sum(int(figures.get(state, 0)) for figures, _ in answers)
            metrics.CYCLE_BRANCHES.labels(CycleKind.PARTY_DAY.value, state).set(total)
        return [u for _, missing in answers for u in missing]

    async def _dispatch(self, month: Period) -> Effects:
        roots = await self._rollup.roots()
        out: list[Notification] = []
        for root in roots:
            summary, children = await asyncio.gather(
                self._rollup.summary(root.id, str(month)), self._rollup.children(root, str(month))
            )
            out.append(messages.dispatch(month, root, summary))
            out.extend(
                messages.dispatch(month, unit, metrics)
                for unit, metrics in children
                if unit.level in _DISPATCH_LEVELS
            )
        return Effects(out)

    async def _feedback(self, quarter: Period, now: dt.datetime) -> Effects:
        periods = [str(quarter), str(quarter.previous()), *(str(m) for m in quarter.months())]
        tree = await self._rollup.walk(await self._rollup.roots(), periods)
        reports = build_reports(tree, quarter, now)
        notes = [
            messages.feedback_issued(quarter, tree.units[r.unit], len(r.attention))
            for r in reports
            if r.level != "branch"
        ]
        return Effects(notes, [(r, tree.units[r.unit].path) for r in reports])
