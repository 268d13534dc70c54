"""The quarterly feedback report, as the scheduler stores, serves and publishes it.

Published on `huibao.feedback.issued` (CloudEvent type `huibao.feedback.issued.v1`, keyed
by the unit) once per unit and quarter, on the configured day after the quarter ends, and
served by the scheduler at `GET /v1/feedback/{id}?quarter=`.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from huibao_contracts.orgunits import OrgUnitId

FEEDBACK_ISSUED_TYPE: Final = "huibao.feedback.issued.v1"
"""CloudEvent `type` of a `FeedbackReport` on `huibao.feedback.issued`."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MonthFigures(_Frozen):
    """Party Day completeness of one unit (all the branches under it) for one month."""

    period: str = Field(description="The month.", examples=["2026-05"])
    expected: int = Field(ge=0, description="Branches expected to hold the Party Day.")
    held: int = Field(ge=0, description="Branches that reported it (on time or late).")
    on_time: int = Field(ge=0, description="Reported no later than the deadline.")
    late: int = Field(ge=0, description="Reported after the deadline.")
    missing: int = Field(ge=0, description="Expected branches without a report.")


class Rank(_Frozen):
    """Where a unit stands among its siblings for one metric."""

    metric: str = Field(description="Catalogue name of the metric.", examples=["lesson.delivered"])
    rank: int | None = Field(
        ge=1,
        description="Competition rank, 1 = best, ties share; null when the unit has no value.",
        examples=[2],
    )
    of: int = Field(ge=1, description="Siblings ranked, the unit included.", examples=[16])


class ChildFigures(_Frozen):
    """A child's Party Day completeness, month by month and summed over the quarter."""

    id: OrgUnitId = Field(description="The child unit.")
    name: str = Field(description="Display name of the child.", examples=["城关镇"])
    level: str = Field(description="Level of the child.", examples=["township"])
    months: list[MonthFigures] = Field(description="Completeness of each month of the quarter.")
    on_time: int = Field(ge=0, description="On-time reports over the quarter.")
    late: int = Field(ge=0, description="Late reports over the quarter.")
    missing: int = Field(ge=0, description="Missing reports over the quarter.")


class Attention(_Frozen):
    """A child that needs attention: a missing or late Party Day report in some month."""

    id: OrgUnitId = Field(description="The child unit.")
    name: str = Field(description="Display name of the child.", examples=["城关镇"])
    missing: int = Field(ge=0, description="Missing reports over the quarter.")
    late: int = Field(ge=0, description="Late reports over the quarter.")
    reasons: list[str] = Field(
        description="One line per month and problem, in Chinese.",
        examples=[["2026-05 未上报 3 个", "2026-06 逾期上报 1 个"]],
    )


class FeedbackReport(_Frozen):
    """The quarterly feedback of one unit.

    Its public metrics this quarter and the previous one and the change, its rank among its
    siblings for a few headline metrics, its own monthly Party Day completeness, each child's,
    and the children that need attention (worst first).
    """

    unit: OrgUnitId = Field(description="The unit the feedback is for.")
    name: str = Field(description="Display name of the unit.", examples=["清源县"])
    level: str = Field(description="Level of the unit.", examples=["county"])
    parent: OrgUnitId | None = Field(description="Parent unit; null for a root.")
    quarter: str = Field(description="The quarter.", examples=["2026-Q2"])
    previous_quarter: str = Field(description="The quarter compared with.", examples=["2026-Q1"])
    issued_at: dt.datetime = Field(description="When the scheduler issued the feedback.")
    metrics: dict[str, float | None] = Field(
        description="Every public metric of the catalogue for the quarter, by name;"
        " a ratio is null when its denominator is 0.",
        examples=[{"party_day.held": 1140, "party_day.attendance_rate": 0.93}],
    )
    previous: dict[str, float | None] = Field(
        description="The same metrics for the previous quarter."
    )
    change: dict[str, float | None] = Field(
        description="Current minus previous for every metric; null when either is null."
    )
    ranks: list[Rank] = Field(description="Rank among siblings for each ranked metric.")
    months: list[MonthFigures] = Field(description="The unit's completeness month by month.")
    children: list[ChildFigures] = Field(
        description="Each child's completeness (empty for a branch), ordered by id."
    )
    attention: list[Attention] = Field(
        description="Children with a missing or late report, most missing first."
    )
