"""Instants in the calendar's default time zone, for tests that move clocks."""

import datetime as dt
from zoneinfo import ZoneInfo

SH = ZoneInfo("Asia/Shanghai")


def at(*args: int) -> dt.datetime:
    """`dt.datetime(*args)` in Asia/Shanghai."""
    return dt.datetime(*args, tzinfo=SH)  # type: ignore[arg-type]
