"""The steps of each cycle and when the calendar wants them, from `CalendarRules`.

A monthly Party Day cycle runs: opened (opens_at) → upcoming_reminder (upcoming_reminder_at)
→ overdue_reminder (overdue_reminder_at) → deadline_passed and escalated (both at the
deadline, in that order) → closed (closes_at). A quarterly feedback cycle runs: opened (the
first instant of the quarter) → issued (feedback_at) → closed (right after issued).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from huibao_contracts.calendar import CalendarRules
from huibao_contracts.cycles import CycleKind, CycleState
from huibao_contracts.periods import Period, PeriodKind
from huibao_scheduler.errors import PlanError


class Step(StrEnum):
    """The steps a cycle goes through; the value is the `step` field of a transition."""

    OPENED = "opened"
    UPCOMING_REMINDER = "upcoming_reminder"
    OVERDUE_REMINDER = "overdue_reminder"
    DEADLINE_PASSED = "deadline_passed"
    ESCALATED = "escalated"
    ISSUED = "issued"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One step of one cycle: when it is due and the state it leads to.

    `useful_until` is the instant after which the step's notifications no longer help; a step
    run at or after it is recorded as skipped (no notifications) but still advances the state.
    None means the step is always worth its notifications.
    """

    kind: CycleKind
    period: Period
    step: Step
    seq: int
    due_at: dt.datetime
    state_after: CycleState
    useful_until: dt.datetime | None = None

    @property
    def key(self) -> str:
        """`kind:period`: the Kafka key and the identity of the cycle."""
        return f"{self.kind.value}:{self.period}"


@dataclass(frozen=True, slots=True)
class CyclePlan:
    """Every step of one cycle, in the order they must run."""

    kind: CycleKind
    period: Period
    steps: tuple[PlannedStep, ...]

    def after(self, last: Step | None) -> tuple[PlannedStep, ...]:
        """The steps still to run when `last` was the last one that ran (None: none ran)."""
        if last is None:
            return self.steps
        names = [s.step for s in self.steps]
        if last not in names:
            raise PlanError(f"{last} is not a step of a {self.kind} cycle")
        return self.steps[names.index(last) + 1 :]

    def state_after(self, last: Step | None) -> CycleState:
        """The cycle's state once `last` has run."""
        if last is None:
            return CycleState.PENDING
        return next(s.state_after for s in self.steps if s.step is last)


def party_day_plan(rules: CalendarRules, month: Period) -> CyclePlan:
    """The monthly Party Day cycle of `month`."""
    kind = CycleKind.PARTY_DAY
    party_day_over = dt.datetime.combine(
        rules.party_day_date(month) + dt.timedelta(days=1), dt.time(0, 0), tzinfo=rules.tz
    )
    deadline = rules.deadline(month)
    closes = rules.closes_at(month)
    rows = [
        (Step.OPENED, rules.opens_at(month), CycleState.OPENED, None),
        (
            Step.UPCOMING_REMINDER,
            rules.upcoming_reminder_at(month),
            CycleState.REMINDED,
            party_day_over,
        ),
        (
            Step.OVERDUE_REMINDER,
            rules.overdue_reminder_at(month),
            CycleState.OVERDUE_REMINDED,
            deadline,
        ),
        (Step.DEADLINE_PASSED, deadline, CycleState.DEADLINE_PASSED, None),
        (Step.ESCALATED, rules.escalates_at(month), CycleState.ESCALATED, closes),
        (Step.CLOSED, closes, CycleState.CLOSED, None),
    ]
    steps = tuple(
        PlannedStep(kind, month, step, seq, due, state, useful)
        for seq, (step, due, state, useful) in enumerate(rows)
    )
    return CyclePlan(kind, month, steps)


def feedback_plan(rules: CalendarRules, quarter: Period) -> CyclePlan:
    """The quarterly feedback cycle of `quarter`."""
    kind = CycleKind.FEEDBACK
    opens = dt.datetime.combine(quarter.first_day, dt.time(0, 0), tzinfo=rules.tz)
    issue = rules.feedback_at(quarter)
    steps = (
        PlannedStep(kind, quarter, Step.OPENED, 0, opens, CycleState.OPENED),
        PlannedStep(kind, quarter, Step.ISSUED, 1, issue, CycleState.ISSUED),
        PlannedStep(kind, quarter, Step.CLOSED, 2, issue, CycleState.CLOSED),
    )
    return CyclePlan(kind, quarter, steps)


def plan_for(rules: CalendarRules, kind: CycleKind, period: Period) -> CyclePlan:
    """The plan of any cycle; the period must be a month (party_day) or a quarter (feedback)."""
    if kind is CycleKind.PARTY_DAY:
        if period.kind is not PeriodKind.MONTH:
            raise PlanError(f"a party_day cycle needs a month, not {period}")
        return party_day_plan(rules, period)
    if period.kind is not PeriodKind.QUARTER:
        raise PlanError(f"a feedback cycle needs a quarter, not {period}")
    return feedback_plan(rules, period)


def cycles_until(
    rules: CalendarRules, first_month: Period, now: dt.datetime
) -> list[tuple[CycleKind, Period]]:
    """Every cycle from `first_month` whose first step is due at `now`, months then quarters."""
    today = rules.local_date(now)
    out: list[tuple[CycleKind, Period]] = []
    month = first_month
    while month.first_day <= today:
        if rules.opens_at(month) <= now:
            out.append((CycleKind.PARTY_DAY, month))
        month = month.next()
    quarter = Period.quarter_of(first_month.first_day)
    while quarter.first_day <= today:
        out.append((CycleKind.FEEDBACK, quarter))
        quarter = quarter.next()
    return out
