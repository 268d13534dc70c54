"""The state machine: due steps in order, and catch-up after downtime."""

from tests.support.shanghai import at

from huibao_contracts.calendar import CalendarRules
from huibao_contracts.cycles import CycleKind, CycleState
from huibao_contracts.periods import Period
from huibao_scheduler.domain.machine import (
    catch_up,
    due_steps,
    is_skipped,
    next_step,
    transition,
)
from huibao_scheduler.domain.plan import Step, feedback_plan, party_day_plan

RULES = CalendarRules()
JULY = Period.parse("2026-07")
AUGUST = Period.parse("2026-08")
Q3 = Period.parse("2026-Q3")


def test_due_steps_stop_at_the_first_step_not_yet_due() -> None:
    plan = party_day_plan(RULES, JULY)
    assert [s.step for s in due_steps(plan, None, at(2026, 7, 24, 9))] == [
        Step.OPENED,
        Step.UPCOMING_REMINDER,
    ]
    assert [s.step for s in due_steps(plan, Step.OPENED, at(2026, 7, 24, 8, 59))] == []


def test_deadline_passed_and_escalated_run_together_at_the_deadline() -> None:
    plan = party_day_plan(RULES, JULY)
    got = due_steps(plan, Step.OVERDUE_REMINDER, at(2026, 7, 30))
    assert [s.step for s in got] == [Step.DEADLINE_PASSED, Step.ESCALATED]


def test_next_step_runs_regardless_of_due_time_and_ends_when_closed() -> None:
    plan = party_day_plan(RULES, JULY)
    assert next_step(plan, None) is plan.steps[0]
    assert next_step(plan, Step.CLOSED) is None


def test_on_time_reminder_is_sent_late_reminder_is_skipped() -> None:
    upcoming = party_day_plan(RULES, JULY).steps[1]
    assert not is_skipped(upcoming, at(2026, 7, 24, 9))
    assert not is_skipped(upcoming, at(2026, 7, 26, 23, 59))
    assert is_skipped(upcoming, at(2026, 7, 27))
    t = transition(upcoming, at(2026, 7, 27, 1))
    assert t.skipped
    assert t.state is CycleState.REMINDED
    assert t.due_at == at(2026, 7, 24, 9)
    assert t.ran_at == at(2026, 7, 27, 1)


def test_catch_up_after_downtime_skips_useless_reminders_and_reaches_the_right_state() -> None:
    # Down from July 2 to August 3: July's reminders are useless, escalation still helps.
    july = party_day_plan(RULES, JULY)
    q3 = feedback_plan(RULES, Q3)
    got = catch_up([(july, Step.OPENED), (q3, Step.OPENED)], at(2026, 8, 3))
    assert [(t.step, t.state, t.skipped) for t in got] == [
        ("upcoming_reminder", CycleState.REMINDED, True),
        ("overdue_reminder", CycleState.OVERDUE_REMINDED, True),
        ("deadline_passed", CycleState.DEADLINE_PASSED, False),
        ("escalated", CycleState.ESCALATED, False),
    ]


def test_catch_up_across_months_runs_in_calendar_order() -> None:
    # Down from July 20 to October 12: July closes, August and September run, Q3 feedback is issued.
    cycles = [
        (party_day_plan(RULES, JULY), Step.OPENED),
        (party_day_plan(RULES, AUGUST), None),
        (party_day_plan(RULES, Period.parse("2026-09")), None),
        (party_day_plan(RULES, Period.parse("2026-10")), None),
        (feedback_plan(RULES, Q3), Step.OPENED),
        (feedback_plan(RULES, Period.parse("2026-Q4")), None),
    ]
    got = catch_up(cycles, at(2026, 10, 12))
    order = [(t.kind.value, t.period, t.step) for t in got]
    assert order.index(("party_day", "2026-07", "closed")) < order.index(
        ("party_day", "2026-08", "upcoming_reminder")
    )
    assert order.index(("party_day", "2026-09", "closed")) < order.index(
        ("feedback", "2026-Q3", "issued")
    )
    assert order[-1] == ("feedback", "2026-Q3", "closed")
    final = {(t.kind, t.period): t.state for t in got}
    assert final[(CycleKind.PARTY_DAY, "2026-07")] is CycleState.CLOSED
    assert final[(CycleKind.PARTY_DAY, "2026-09")] is CycleState.CLOSED
    assert final[(CycleKind.PARTY_DAY, "2026-10")] is CycleState.OPENED
    assert final[(CycleKind.FEEDBACK, "2026-Q3")] is CycleState.CLOSED
    assert final[(CycleKind.FEEDBACK, "2026-Q4")] is CycleState.OPENED
    # Only steps still useful at catch-up time carry notifications: the dispatch summaries.
    sent = {(t.period, t.step) for t in got if not t.skipped}
    assert ("2026-08", "closed") in sent
    assert ("2026-08", "escalated") not in sent
    assert ("2026-09", "escalated") not in sent  # September closed on October 8
