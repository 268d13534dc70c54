"""The scheduler's HTTP answers as OpenAPI models (what the routes send, field by field).

The feedback report itself is a contract (`huibao_contracts.feedback.FeedbackReport`): it
is also published on Kafka, so integrators share it.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

from huibao_contracts.cycles import CycleKind, CycleState, CycleTransition


class CycleItem(BaseModel):
    """One cycle the calendar has scheduled so far."""

    kind: CycleKind = Field(description="`party_day` (monthly) or `feedback` (quarterly).")
    period: str = Field(description="The cycle's month or quarter.", examples=["2026-05"])
    state: CycleState = Field(description="Its state; `pending` before its first step.")
    last_step: str | None = Field(
        description="The last step that ran; null before the first.", examples=["opened"]
    )
    updated_at: dt.datetime | None = Field(
        description="When the last step ran; null before the first."
    )
    next_step: str | None = Field(
        description="The step that runs next; null once the cycle is closed.",
        examples=["reminded"],
    )
    next_due_at: dt.datetime | None = Field(
        description="When the next step is due; null once the cycle is closed."
    )


class CyclesAnswer(BaseModel):
    """`GET /v1/cycles`."""

    now: dt.datetime = Field(description="The scheduler's clock.")
    items: list[CycleItem] = Field(description="Every cycle scheduled so far.")


class RunAnswer(BaseModel):
    """`POST /v1/cycles/{kind}/{period}/run`: the step that ran."""

    transition: CycleTransition = Field(description="The step, its new state and its times.")


class ClockState(BaseModel):
    """`GET /v1/clock`."""

    now: dt.datetime = Field(description="The scheduler's clock.")
    mode: Literal["manual", "system"] = Field(
        description="`manual` when `PUT /v1/clock` may move it (HUIBAO_CLOCK=manual)."
    )
