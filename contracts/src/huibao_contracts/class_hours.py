"""The class-hour rule (学时): how long a training counts for, configurable like the calendar.

A training reported in hours counts `per_hour` class hours per hour (1 by default); one
reported as half days or full days counts `per_half_day` (4) or `per_full_day` (8) per
day, whatever its `hours` say. `training.person_hours` adds participants × class hours.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from huibao_contracts.activities import TrainingDuration


class ClassHourRules(BaseModel):
    """Class hours per hour, half day and full day of training."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_hour: Decimal = Field(default=Decimal(1), ge=0, le=100, description="Per hour.")
    per_half_day: Decimal = Field(default=Decimal(4), ge=0, le=100, description="Per half day.")
    per_full_day: Decimal = Field(default=Decimal(8), ge=0, le=100, description="Per full day.")

    def class_hours(
        self, duration: TrainingDuration | str, hours: Decimal, days: int = 1
    ) -> Decimal:
        """Class hours of one training: `hours` × per_hour when reported in hours, else
        `days` × the half-day or full-day figure. Exact (decimal) arithmetic."""
        if duration == TrainingDuration.HALF_DAY:
            return self.per_half_day * days
        if duration == TrainingDuration.FULL_DAY:
            return self.per_full_day * days
        return self.per_hour * hours


DEFAULT_CLASS_HOURS = ClassHourRules()
"""The rule of the source practices: 1 per hour, 4 per half day, 8 per full day."""
