"""Instants in the calendar's default time zone, for tests that move clocks."""

import datetime as dt
from zoneinfo import ZoneInfo

SH = ZoneInfo("Asia/Shanghai")


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    """That local instant in Asia/Shanghai."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=SH)
