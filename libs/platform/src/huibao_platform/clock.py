"""Clocks: the system clock in production, a manual one for tests and the simulated quarter."""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    """Tells the current instant (timezone-aware)."""

    def now(self) -> dt.datetime:
        """The current instant."""
        ...


class SystemClock:
    """The real time."""

    def now(self) -> dt.datetime:
        """The current instant, UTC."""
        return dt.datetime.now(dt.UTC)


class ManualClock:
    """A clock that only moves when told to: tests and demos drive it."""

    def __init__(self, start: dt.datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("a clock needs a timezone-aware instant")
        self._now = start

    def now(self) -> dt.datetime:
        """The instant last set."""
        return self._now

    def set(self, instant: dt.datetime) -> None:
        """Move to `instant`; time never runs backwards."""
        if instant.tzinfo is None:
            raise ValueError("a clock needs a timezone-aware instant")
        if instant < self._now:
            raise ValueError(f"the clock cannot go back from {self._now} to {instant}")
        self._now = instant
