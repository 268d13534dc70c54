"""The scheduler's settings: one object, read from the environment once at start-up."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from huibao_contracts.periods import InvalidPeriodError, Period, PeriodKind
from huibao_platform.settings import CommonSettings


class SchedulerSettings(CommonSettings):
    """Everything the scheduler reads from `HUIBAO_*` variables (plus the common ones)."""

    http_port: int = Field(default=8003, ge=0, le=65535, description="HTTP port.")
    rollup_url: str = Field(
        default="http://127.0.0.1:8002",
        description="Base URL of the rollup query API (HUIBAO_ROLLUP_URL).",
    )
    clock: Literal["system", "manual"] = Field(
        default="system",
        description=(
            "system: real time; manual: time moves only through PUT /v1/clock (HUIBAO_CLOCK)."
        ),
    )
    clock_start: dt.datetime | None = Field(
        default=None,
        description="Start instant of the manual clock, ISO 8601 with offset (HUIBAO_CLOCK_START).",
    )
    tick_seconds: float = Field(
        default=2.0, gt=0, le=3600, description="Seconds between two runs of the ticker."
    )
    first_period: str | None = Field(
        default=None,
        description=(
            "First month to schedule (YYYY-MM); default the month of the clock at the first start."
            " Recorded in PostgreSQL at the first start, so later restarts catch up from it."
        ),
    )
    rollup_page_size: int = Field(
        default=1000, ge=1, le=10_000, description="Page size of paginated rollup queries."
    )
    rollup_concurrency: int = Field(
        default=8, ge=1, le=128, description="Rollup queries in flight at once."
    )
    rollup_timeout: float = Field(default=30.0, gt=0, description="Seconds per rollup request.")
    walk_workers: int = Field(
        default=4,
        ge=1,
        le=64,
        description=(
            "Parents whose children listings a per-unit step (every branch's reminder, the"
            " quarterly feedback) reads and issues at once while it walks the tree."
        ),
    )
    issue_chunk: int = Field(
        default=5000,
        ge=1,
        le=100_000,
        description=(
            "Notifications or feedback reports a per-unit step writes per transaction, before"
            " the step commits (each chunk keyed by unit, so a rerun issues nothing twice)."
        ),
    )
    step_delay_seconds: float = Field(
        default=0.0,
        ge=0,
        le=600,
        description=(
            "For tests only (HUIBAO_STEP_DELAY_SECONDS): sleep this long inside every step's"
            " transaction, after claiming the step and before committing, logging"
            " `step_delayed` first, so that a test can kill the replica holding the claim."
            " Leave at 0 in every deployment."
        ),
    )

    def start_instant(self) -> dt.datetime:
        """Where the manual clock starts: HUIBAO_CLOCK_START, or now."""
        start = self.clock_start or dt.datetime.now(dt.UTC)
        if start.tzinfo is None:
            start = start.replace(tzinfo=self.calendar.tz)
        return start

    def first_month(self, now: dt.datetime) -> Period:
        """The first month to schedule when the database does not know one yet."""
        if self.first_period is None:
            return Period.month_of(self.calendar.local_date(now))
        period = Period.parse(self.first_period)
        if period.kind is not PeriodKind.MONTH:
            raise InvalidPeriodError(f"HUIBAO_FIRST_PERIOD must be a month, not {period}")
        return period
