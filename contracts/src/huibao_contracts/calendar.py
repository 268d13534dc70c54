"""The calendar the work follows, as pure functions of configurable rules.

Defaults (DESIGN.md §4): Party Day on the 26th; a report is on time when it was recorded
no later than the end of the 29th, local time; reminders on the 24th (upcoming) and the
28th (not yet reported); escalation after the deadline; the monthly cycle closes 7 days
after month end; the quarterly feedback is issued on the 10th day after the quarter ends.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from huibao_contracts.periods import Period, PeriodKind


class CalendarRules(BaseModel):
    """Every date rule of the cycles; all configurable, all in `timezone`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = Field(default="Asia/Shanghai", description="IANA time zone of all dates.")
    party_day: int = Field(default=26, ge=1, le=28, description="Day of month of the Party Day.")
    deadline_day: int = Field(
        default=29, ge=1, le=31, description="Reports recorded by the end of this day are on time."
    )
    upcoming_reminder_day: int = Field(default=24, ge=1, le=28)
    overdue_reminder_day: int = Field(default=28, ge=1, le=31)
    open_day: int = Field(default=1, ge=1, le=28, description="Day the monthly cycle opens.")
    close_after_days: int = Field(
        default=7, ge=0, le=60, description="Days after month end when the monthly cycle closes."
    )
    feedback_after_days: int = Field(
        default=10, ge=1, le=60, description="The feedback is issued on this day after quarter end."
    )

    @property
    def tz(self) -> ZoneInfo:
        """The configured time zone."""
        return ZoneInfo(self.timezone)

    def _day_in(self, month: Period, day: int) -> dt.date:
        return min(dt.date(month.year, month.index, 1) + dt.timedelta(days=day - 1), month.last_day)

    def _start_of(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(0, 0), tzinfo=self.tz)

    def party_day_date(self, month: Period) -> dt.date:
        """The Party Day of `month` (the 26th by default)."""
        _require_month(month)
        return self._day_in(month, self.party_day)

    def deadline(self, month: Period) -> dt.datetime:
        """The instant after which a Party Day report of `month` is late (end of the 29th)."""
        _require_month(month)
        return self._start_of(self._day_in(month, self.deadline_day) + dt.timedelta(days=1))

    def is_on_time(self, month: Period, recorded_at: dt.datetime) -> bool:
        """True when a report recorded at `recorded_at` is no later than the deadline."""
        return recorded_at <= self.deadline(month)

    def opens_at(self, month: Period) -> dt.datetime:
        """When the monthly cycle opens."""
        return self._start_of(self._day_in(month, self.open_day))

    def upcoming_reminder_at(self, month: Period) -> dt.datetime:
        """When branches are reminded that the Party Day is coming."""
        return self._start_of(self._day_in(month, self.upcoming_reminder_day)) + dt.timedelta(
            hours=9
        )

    def overdue_reminder_at(self, month: Period) -> dt.datetime:
        """When branches that have not reported yet are reminded."""
        return self._start_of(self._day_in(month, self.overdue_reminder_day)) + dt.timedelta(
            hours=9
        )

    def escalates_at(self, month: Period) -> dt.datetime:
        """When missing branches are escalated to their parents (right after the deadline)."""
        return self.deadline(month)

    def closes_at(self, month: Period) -> dt.datetime:
        """When the monthly cycle closes (7 days after month end by default)."""
        _require_month(month)
        return self._start_of(month.last_day + dt.timedelta(days=1 + self.close_after_days))

    def feedback_at(self, quarter: Period) -> dt.datetime:
        """When the quarterly feedback is issued (the 10th day after quarter end by default)."""
        if quarter.kind is not PeriodKind.QUARTER:
            raise ValueError(f"{quarter} is not a quarter")
        return self._start_of(quarter.last_day + dt.timedelta(days=self.feedback_after_days))

    def local_date(self, instant: dt.datetime) -> dt.date:
        """The local calendar date of an instant."""
        return instant.astimezone(self.tz).date()


def _require_month(period: Period) -> None:
    if period.kind is not PeriodKind.MONTH:
        raise ValueError(f"{period} is not a month")
