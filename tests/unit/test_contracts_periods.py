"""Periods as city staff type them: 2026-05, 2026-Q2, 2026."""

import datetime as dt

import pytest

from huibao_contracts.periods import InvalidPeriodError, Period, PeriodKind, month_range


@pytest.mark.parametrize(
    ("text", "kind", "first", "last"),
    [
        ("2026-05", PeriodKind.MONTH, dt.date(2026, 5, 1), dt.date(2026, 5, 31)),
        ("2026-02", PeriodKind.MONTH, dt.date(2026, 2, 1), dt.date(2026, 2, 28)),
        ("2028-02", PeriodKind.MONTH, dt.date(2028, 2, 1), dt.date(2028, 2, 29)),
        ("2026-Q2", PeriodKind.QUARTER, dt.date(2026, 4, 1), dt.date(2026, 6, 30)),
        ("2026-Q4", PeriodKind.QUARTER, dt.date(2026, 10, 1), dt.date(2026, 12, 31)),
        ("2026", PeriodKind.YEAR, dt.date(2026, 1, 1), dt.date(2026, 12, 31)),
    ],
)
def test_parse_and_bounds(text: str, kind: PeriodKind, first: dt.date, last: dt.date) -> None:
    p = Period.parse(text)
    assert p.kind is kind
    assert (p.first_day, p.last_day) == (first, last)
    assert str(p) == text


@pytest.mark.parametrize(
    "text", ["2026-13", "2026-00", "2026-Q5", "26-05", "2026-5", "", "May", "2026-Q0"]
)
def test_malformed_periods_are_refused_with_the_forms_named(text: str) -> None:
    with pytest.raises(InvalidPeriodError, match="YYYY-MM"):
        Period.parse(text)


def test_a_day_counts_in_its_month_quarter_and_year() -> None:
    assert [str(p) for p in Period.all_of(dt.date(2026, 7, 26))] == ["2026-07", "2026-Q3", "2026"]


def test_next_and_previous_cross_year_boundaries() -> None:
    assert str(Period.parse("2026-12").next()) == "2027-01"
    assert str(Period.parse("2026-Q1").previous()) == "2025-Q4"
    assert str(Period.parse("2026").next()) == "2027"


def test_months_of_a_quarter_and_a_range() -> None:
    assert [str(m) for m in Period.parse("2026-Q3").months()] == ["2026-07", "2026-08", "2026-09"]
    assert len(Period.parse("2026").months()) == 12
    rng = month_range(Period.parse("2026-11"), Period.parse("2027-02"))
    assert [str(m) for m in rng] == ["2026-11", "2026-12", "2027-01", "2027-02"]
