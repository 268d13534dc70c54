"""Periods: `2026-05` (month), `2026-Q2` (quarter), `2026` (year), in local time."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum

from huibao_contracts.storable import year_error

PERIOD_PATTERN = r"^[0-9]{4}(-(0[1-9]|1[0-2]|Q[1-4]))?$"
"""The text of a period, for schemas (OpenAPI parameters); `Period.parse` also checks the
year is a storable one."""

_PATTERN = re.compile(r"^(?P<year>\d{4})(?:-(?:(?P<month>0[1-9]|1[0-2])|Q(?P<quarter>[1-4])))?$")


class PeriodKind(StrEnum):
    """Granularity of a period."""

    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


class InvalidPeriodError(ValueError):
    """The text is not a period such as `2026-05`, `2026-Q2` or `2026`."""


@dataclass(frozen=True, order=True, slots=True)
class Period:
    """A calendar month, quarter or year. `index` is the month (1-12) or quarter (1-4)."""

    year: int
    kind: PeriodKind
    index: int = 0

    @classmethod
    def parse(cls, text: str) -> Period:
        """Parse `2026-05`, `2026-Q2` or `2026`; raise InvalidPeriodError otherwise."""
        m = _PATTERN.match(text.strip()) if isinstance(text, str) else None
        if m is None:
            raise InvalidPeriodError(
                f"{text!r} is not a period: use YYYY-MM (month), YYYY-Qn (quarter) or YYYY (year)"
            )
        year = int(m["year"])
        if (error := year_error(year)) is not None:
            raise InvalidPeriodError(f"{text!r} is not a period: {error}")
        if m["month"]:
            return cls(year, PeriodKind.MONTH, int(m["month"]))
        if m["quarter"]:
            return cls(year, PeriodKind.QUARTER, int(m["quarter"]))
        return cls(year, PeriodKind.YEAR)

    @classmethod
    def month_of(cls, day: dt.date) -> Period:
        """The month containing `day`."""
        return cls(day.year, PeriodKind.MONTH, day.month)

    @classmethod
    def quarter_of(cls, day: dt.date) -> Period:
        """The quarter containing `day`."""
        return cls(day.year, PeriodKind.QUARTER, (day.month - 1) // 3 + 1)

    @classmethod
    def year_of(cls, day: dt.date) -> Period:
        """The year containing `day`."""
        return cls(day.year, PeriodKind.YEAR)

    @classmethod
    def all_of(cls, day: dt.date) -> tuple[Period, Period, Period]:
        """Month, quarter and year containing `day`: the periods a fact counts in."""
        return cls.month_of(day), cls.quarter_of(day), cls.year_of(day)

    def __str__(self) -> str:
        if self.kind is PeriodKind.MONTH:
            return f"{self.year:04d}-{self.index:02d}"
        if self.kind is PeriodKind.QUARTER:
            return f"{self.year:04d}-Q{self.index}"
        return f"{self.year:04d}"

    @property
    def first_day(self) -> dt.date:
        """First day of the period."""
        if self.kind is PeriodKind.MONTH:
            return dt.date(self.year, self.index, 1)
        if self.kind is PeriodKind.QUARTER:
            return dt.date(self.year, 3 * self.index - 2, 1)
        return dt.date(self.year, 1, 1)

    @property
    def last_day(self) -> dt.date:
        """Last day of the period."""
        return self.next().first_day - dt.timedelta(days=1)

    def months(self) -> tuple[Period, ...]:
        """The months of the period, in order."""
        first = self.first_day
        count = {PeriodKind.MONTH: 1, PeriodKind.QUARTER: 3, PeriodKind.YEAR: 12}[self.kind]
        return tuple(Period(first.year, PeriodKind.MONTH, first.month + i) for i in range(count))

    def next(self) -> Period:
        """The period of the same kind that follows."""
        if self.kind is PeriodKind.YEAR:
            return Period(self.year + 1, self.kind)
        last = 12 if self.kind is PeriodKind.MONTH else 4
        if self.index == last:
            return Period(self.year + 1, self.kind, 1)
        return Period(self.year, self.kind, self.index + 1)

    def previous(self) -> Period:
        """The period of the same kind that precedes."""
        if self.kind is PeriodKind.YEAR:
            return Period(self.year - 1, self.kind)
        last = 12 if self.kind is PeriodKind.MONTH else 4
        if self.index == 1:
            return Period(self.year - 1, self.kind, last)
        return Period(self.year, self.kind, self.index - 1)

    def contains(self, day: dt.date) -> bool:
        """True when `day` falls in the period."""
        return self.first_day <= day <= self.last_day


def month_range(first: Period, last: Period) -> list[Period]:
    """Every month from `first` to `last` inclusive (both months)."""
    out: list[Period] = []
    p = first
    while p <= last:
        out.append(p)
        p = p.next()
    return out
