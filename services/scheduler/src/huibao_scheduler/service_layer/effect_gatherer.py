"""What each step needs from the rollup and what it sends, gathered before the transaction.

The per-unit steps stream: the upcoming reminder walks the tree one parent at a time and
the feedback round issues each family's reports as its listings arrive (`tree_walk`), the
not-yet-reported reminder reads the missing branches page by page; their notifications and
reports go to the step's `Issuer` in chunks. The few notifications of the other steps (one
escalation per parent, the dispatch summaries) come back in `Effects` and are written with
the step's transition. The not-yet-reported reminder and the escalation also set
`huibao_cycle_branches` (the month's completeness summed over roots) for the dashboards.

Steps without notifications (opened, deadline_passed, the feedback cycle's closed) need no
data. A skipped step gathers nothing. Any rollup failure propagates, and the step is retried.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from huibao_contracts.calendar import CalendarRules
from huibao_contracts.cycles import CycleKind, Notification
from huibao_contracts.periods import Period
from huibao_platform import metrics
from huibao_scheduler.domain import messages
from huibao_scheduler.domain.feedback import Member, Round
from huibao_scheduler.domain.plan import PlannedStep, Step
from huibao_scheduler.domain.units import Unit
from huibao_scheduler.service_layer.issuer import Issuer
from huibao_scheduler.service_layer.ports import RollupReader
from huibao_scheduler.service_layer.tree_walk import walk

_DISPATCH_LEVELS = frozenset({"city", "county"})
_BRANCH = "branch"
_STATES = ("expected", "held", "on_time", "late", "missing", "unexpected")


@dataclass(slots=True)
class Effects:
    """The notifications a step commits with its transition (the streamed ones excluded)."""

    notifications: list[Notification] = field(default_factory=list)


class EffectGatherer:
    """Asks the rollup for what a step needs; streams per-unit effects to the `Issuer`."""

    def __init__(self, rollup: RollupReader, rules: CalendarRules, *, workers: int = 4) -> None:
        self._rollup = rollup
        self._rules = rules
        self._workers = workers

    async def gather(self, step: PlannedStep, now: dt.datetime, issuer: Issuer) -> Effects:
        """The effects of `step` running (not skipped) at `now`."""
        p = step.period
        if step.kind is CycleKind.FEEDBACK:
            if step.step is Step.ISSUED:
                await self._feedback(p, now, issuer)
            return Effects()
        if step.step is Step.UPCOMING_REMINDER:
            await self._upcoming(p, issuer)
        elif step.step is Step.OVERDUE_REMINDER:
            rules = self._rules
            await self._missing(
                p, lambda units: issuer.notify(messages.not_reported_all(rules, p, units))
            )
        elif step.step is Step.ESCALATED:
            return await self._escalations(p)
        elif step.step is Step.CLOSED:
            return await self._dispatch(p)
        return Effects()

    async def _upcoming(self, month: Period, issuer: Issuer) -> None:
        period = str(month)

        async def visit(parent: Unit) -> list[Unit]:
            children = [unit for unit, _ in await self._rollup.children(parent, period)]
            branches = [u for u in children if u.level == _BRANCH]
            await issuer.notify(messages.upcoming_all(self._rules, month, branches))
            return [u for u in children if u.level != _BRANCH]

        roots = await self._rollup.roots()
        await issuer.notify(
            messages.upcoming(self._rules, month, u) for u in roots if u.level == _BRANCH
        )
        await walk([r for r in roots if r.level != _BRANCH], visit, self._workers)

    def _not_reported(self, month: Period, units: Sequence[Unit]) -> list[Notification]:
        return messages.not_reported_all(self._rules, month, units)

    async def _missing(self, month: Period, page: Callable[[list[Unit]], Awaitable[Any]]) -> None:
        """Hand every root's missing branches to `page`, page by page; set the gauges."""
        totals = dict.fromkeys(_STATES, 0)
        for root in await self._rollup.roots():
            first = True
            async for figures, units in self._rollup.missing_pages(root.id, str(month)):
                if first:
                    for state in _STATES:
                        totals[state] += int(figures.get(state, 0))
                    first = False
                await page(units)
        for state, total in totals.items():
            metrics.CYCLE_BRANCHES.labels(CycleKind.PARTY_DAY.value, state).set(total)

    async def _escalations(self, month: Period) -> Effects:
        by_parent: dict[str, list[Unit]] = defaultdict(list)

        async def group(units: list[Unit]) -> None:
            for u in units:
                if u.parent is not None:  # keep only what the text and details name
                    by_parent[u.parent].append(Unit(u.id, u.name, u.level, u.parent))

        await self._missing(month, group)
        return Effects(messages.escalations(month, [u for us in by_parent.values() for u in us]))

    async def _dispatch(self, month: Period) -> Effects:
        roots = await self._rollup.roots()
        out: list[Notification] = []
        for root in roots:
            summary, children = await asyncio.gather(
                self._rollup.summary(root.id, str(month)), self._rollup.children(root, str(month))
            )
            out.append(messages.dispatch(month, root, summary))
            out.extend(
                messages.dispatch(month, unit, figures)
                for unit, figures in children
                if unit.level in _DISPATCH_LEVELS
            )
        return Effects(out)

    async def _feedback(self, quarter: Period, now: dt.datetime, issuer: Issuer) -> None:
        issuing = Round(quarter, now)

        async def visit(parent: Member | None) -> list[Member | None]:
            if parent is None:
                roots = await self._rollup.roots()
                listed = await self._rollup.root_figures(roots, issuing.periods)
            else:
                listed = await self._rollup.listing(parent.unit, issuing.periods)
            done = issuing.family(parent, listed)
            await issuer.feedback((r, _path(parent, r.unit)) for r in done.reports)
            await issuer.notify(
                messages.feedback_issued(quarter, parent.unit, len(r.attention))
                for r in done.reports[:1]
                if parent is not None and r.unit == parent.unit.id
            )
            return list(done.to_visit)

        await walk([None], visit, self._workers)


def _path(parent: Member | None, unit: str) -> tuple[str, ...]:
    """A unit's path: its own (the parent's report) or its parent's plus its id."""
    if parent is None:
        return (unit,)
    if parent.unit.id == unit:
        return parent.unit.path
    return (*parent.unit.path, unit)
