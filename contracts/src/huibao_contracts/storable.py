"""Values every Huibao store can hold: the constrained types the contract models use.

A value that validates must also be storable, or one bad field would fail a whole batch
at PostgreSQL and look like an outage. The limits, in one place:

- text holds no NUL character (U+0000): no PostgreSQL `text` or `jsonb` value can;
- dates and instants have years from `MIN_YEAR` to `MAX_YEAR`: four-digit years (what a
  period such as `2026-05` spells), one short of Python's last (9999) so that every period
  has a next one and a last day `datetime.date` can compute;
- an instant's UTC offset is less than 16 hours either way: PostgreSQL refuses a
  displacement of ±16:00 or more ("time zone displacement out of range");
- integers stored as `bigint` stay within 64 bits (`BIGINT_MAX`).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final

from pydantic import AfterValidator, AwareDatetime

MIN_YEAR: Final = 1000
MAX_YEAR: Final = 9998
MAX_UTC_OFFSET: Final = dt.timedelta(hours=16)
"""Offsets must be strictly smaller than this, either way."""
BIGINT_MAX: Final = 2**63 - 1
INT4_MAX: Final = 2**31 - 1
NUL_MESSAGE: Final = "text must not contain the NUL character (U+0000)"


def year_error(year: int) -> str | None:
    """Why `year` cannot be stored, or None when it can."""
    if MIN_YEAR <= year <= MAX_YEAR:
        return None
    return f"the year must be between {MIN_YEAR} and {MAX_YEAR}, not {year:04d}"


def _text(value: str) -> str:
    if "\x00" in value:
        raise ValueError(NUL_MESSAGE)
    return value


def _date(value: dt.date) -> dt.date:
    if (error := year_error(value.year)) is not None:
        raise ValueError(error)
    return value


def _instant(value: dt.datetime) -> dt.datetime:
    offset = value.utcoffset()
    if offset is not None and abs(offset) >= MAX_UTC_OFFSET:
        sign, minutes = (
            "-" if offset < dt.timedelta(0) else "+",
            int(abs(offset).total_seconds()) // 60,
        )
        raise ValueError(
            f"the UTC offset must be less than 16 hours either way, not {sign}"
            f"{minutes // 60:02d}:{minutes % 60:02d} (PostgreSQL cannot store it)"
        )
    if (error := year_error(value.year)) is not None:
        raise ValueError(error)
    return value


Text = Annotated[str, AfterValidator(_text)]
"""Text without U+0000 (length limits stay on the field)."""

StorableDate = Annotated[dt.date, AfterValidator(_date)]
"""A date with a year from MIN_YEAR to MAX_YEAR."""

StorableInstant = Annotated[AwareDatetime, AfterValidator(_instant)]
"""An instant with an offset (RFC 3339) PostgreSQL can store, its year within range."""
