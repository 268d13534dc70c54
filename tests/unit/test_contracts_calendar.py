"""The calendar rules of DESIGN.md §4, in Asia/Shanghai unless configured otherwise."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from huibao_contracts.calendar import CalendarRules
from huibao_contracts.periods import Period

SH = ZoneInfo("Asia/Shanghai")
JULY = Period.parse("2026-07")


def test_defaults_party_day_on_the_26th_deadline_end_of_29th() -> None:
    cal = CalendarRules()
    assert cal.party_day_date(JULY) == dt.date(2026, 7, 26)
    assert cal.deadline(JULY) == dt.datetime(2026, 7, 30, 0, 0, tzinfo=SH)


def test_on_time_is_inclusive_of_the_last_instant_of_the_29th() -> None:
    cal = CalendarRules()
    assert cal.is_on_time(JULY, dt.datetime(2026, 7, 29, 23, 59, 59, tzinfo=SH))
    assert cal.is_on_time(JULY, dt.datetime(2026, 7, 30, 0, 0, tzinfo=SH))
    assert not cal.is_on_time(JULY, dt.datetime(2026, 7, 30, 0, 0, 1, tzinfo=SH))


def test_deadline_compares_instants_across_time_zones() -> None:
    cal = CalendarRules()
    # 16:30 UTC on the 29th is 00:30 on the 30th in Shanghai: late.
    assert not cal.is_on_time(JULY, dt.datetime(2026, 7, 29, 16, 30, tzinfo=dt.UTC))
    assert cal.is_on_time(JULY, dt.datetime(2026, 7, 29, 15, 59, tzinfo=dt.UTC))


def test_reminders_close_and_feedback_dates() -> None:
    cal = CalendarRules()
    assert cal.upcoming_reminder_at(JULY).date() == dt.date(2026, 7, 24)
    assert cal.overdue_reminder_at(JULY).date() == dt.date(2026, 7, 28)
    assert cal.closes_at(JULY) == dt.datetime(2026, 8, 8, tzinfo=SH)
    assert cal.feedback_at(Period.parse("2026-Q3")) == dt.datetime(2026, 10, 10, tzinfo=SH)


def test_everything_is_configurable() -> None:
    cal = CalendarRules(timezone="Europe/Berlin", party_day=20, deadline_day=22, close_after_days=3)
    assert cal.party_day_date(JULY) == dt.date(2026, 7, 20)
    assert cal.deadline(JULY) == dt.datetime(2026, 7, 23, tzinfo=ZoneInfo("Europe/Berlin"))
    assert cal.closes_at(JULY).date() == dt.date(2026, 8, 4)


def test_a_deadline_day_past_month_end_is_the_last_day() -> None:
    cal = CalendarRules(deadline_day=31)
    assert cal.deadline(Period.parse("2026-02")) == dt.datetime(2026, 3, 1, tzinfo=SH)


def test_month_rules_refuse_a_quarter() -> None:
    with pytest.raises(ValueError, match="not a month"):
        CalendarRules().deadline(Period.parse("2026-Q3"))
