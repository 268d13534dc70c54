"""The steps of each cycle and their due instants, from the calendar rules."""

import datetime as dt

import pytest
from tests.support.shanghai import at

from huibao_contracts.calendar import CalendarRules
from huibao_contracts.cycles import CycleKind, CycleState
from huibao_contracts.periods import Period
from huibao_scheduler.domain.plan import Step, cycles_until, feedback_plan, party_day_plan, plan_for

JULY = Period.parse("2026-07")


def test_party_day_steps_and_due_times_with_the_default_calendar() -> None:
    plan = party_day_plan(CalendarRules(), JULY)
    assert [(s.step, s.due_at, s.state_after) for s in plan.steps] == [
        (Step.OPENED, at(2026, 7, 1), CycleState.OPENED),
        (Step.UPCOMING_REMINDER, at(2026, 7, 24, 9), CycleState.REMINDED),
        (Step.OVERDUE_REMINDER, at(2026, 7, 28, 9), CycleState.OVERDUE_REMINDED),
        (Step.DEADLINE_PASSED, at(2026, 7, 30), CycleState.DEADLINE_PASSED),
        (Step.ESCALATED, at(2026, 7, 30), CycleState.ESCALATED),
        (Step.CLOSED, at(2026, 8, 8), CycleState.CLOSED),
    ]
    assert [s.seq for s in plan.steps] == list(range(6))


def test_reminders_stop_helping_after_the_party_day_and_the_deadline() -> None:
    steps = {s.step: s for s in party_day_plan(CalendarRules(), JULY).steps}
    assert steps[Step.UPCOMING_REMINDER].useful_until == at(2026, 7, 27)
    assert steps[Step.OVERDUE_REMINDER].useful_until == at(2026, 7, 30)
    assert steps[Step.ESCALATED].useful_until == at(2026, 8, 8)
    assert steps[Step.CLOSED].useful_until is None


def test_a_configured_calendar_moves_every_step() -> None:
    rules = CalendarRules(
        party_day=20,
        deadline_day=22,
        upcoming_reminder_day=18,
        overdue_reminder_day=21,
        close_after_days=3,
        timezone="UTC",
    )
    due = [s.due_at for s in party_day_plan(rules, Period.parse("2026-02")).steps]
    utc = dt.UTC
    assert due == [
        dt.datetime(2026, 2, 1, tzinfo=utc),
        dt.datetime(2026, 2, 18, 9, tzinfo=utc),
        dt.datetime(2026, 2, 21, 9, tzinfo=utc),
        dt.datetime(2026, 2, 23, tzinfo=utc),
        dt.datetime(2026, 2, 23, tzinfo=utc),
        dt.datetime(2026, 3, 4, tzinfo=utc),
    ]


def test_deadline_day_past_month_end_is_clamped_to_the_last_day() -> None:
    plan = party_day_plan(
        CalendarRules(deadline_day=31, overdue_reminder_day=30), Period.parse("2026-02")
    )
    assert plan.steps[3].due_at == at(2026, 3, 1)
    assert plan.steps[2].due_at == at(2026, 2, 28, 9)


def test_feedback_cycle_opens_at_quarter_start_and_issues_on_the_10th_day_after() -> None:
    plan = feedback_plan(CalendarRules(), Period.parse("2026-Q3"))
    assert [(s.step, s.due_at, s.state_after) for s in plan.steps] == [
        (Step.OPENED, at(2026, 7, 1), CycleState.OPENED),
        (Step.ISSUED, at(2026, 10, 10), CycleState.ISSUED),
        (Step.CLOSED, at(2026, 10, 10), CycleState.CLOSED),
    ]


def test_plan_after_and_state_after() -> None:
    plan = party_day_plan(CalendarRules(), JULY)
    assert [s.step for s in plan.after(Step.DEADLINE_PASSED)] == [Step.ESCALATED, Step.CLOSED]
    assert plan.after(Step.CLOSED) == ()
    assert plan.state_after(None) is CycleState.PENDING
    assert plan.state_after(Step.OVERDUE_REMINDER) is CycleState.OVERDUE_REMINDED
    with pytest.raises(ValueError, match="not a step"):
        plan.after(Step.ISSUED)


def test_plan_for_checks_the_period_kind() -> None:
    rules = CalendarRules()
    assert plan_for(rules, CycleKind.FEEDBACK, Period.parse("2026-Q1")).kind is CycleKind.FEEDBACK
    with pytest.raises(ValueError, match="needs a month"):
        plan_for(rules, CycleKind.PARTY_DAY, Period.parse("2026-Q1"))
    with pytest.raises(ValueError, match="needs a quarter"):
        plan_for(rules, CycleKind.FEEDBACK, JULY)


def test_cycles_until_lists_months_and_quarters_started_by_now() -> None:
    got = cycles_until(CalendarRules(), Period.parse("2026-08"), at(2026, 10, 2))
    assert got == [
        (CycleKind.PARTY_DAY, Period.parse("2026-08")),
        (CycleKind.PARTY_DAY, Period.parse("2026-09")),
        (CycleKind.PARTY_DAY, Period.parse("2026-10")),
        (CycleKind.FEEDBACK, Period.parse("2026-Q3")),
        (CycleKind.FEEDBACK, Period.parse("2026-Q4")),
    ]
