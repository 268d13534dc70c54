"""Cycle transitions, notifications and quarterly feedback as published by the scheduler."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from huibao_contracts.orgunits import OrgUnitId

TRANSITION_TYPE: Final = "huibao.cycle.transition.v1"
"""CloudEvent `type` of a `CycleTransition` on `huibao.cycle.events`."""
NOTIFICATION_TYPE: Final = "huibao.notification.v1"
"""CloudEvent `type` of a `Notification` on `huibao.notifications`."""


class CycleKind(StrEnum):
    """The two calendar cycles."""

    PARTY_DAY = "party_day"
    FEEDBACK = "feedback"


class CycleState(StrEnum):
    """States of a cycle, in order. A feedback cycle goes opened → issued → closed."""

    PENDING = "pending"
    OPENED = "opened"
    REMINDED = "reminded"
    OVERDUE_REMINDED = "overdue_reminded"
    DEADLINE_PASSED = "deadline_passed"
    ESCALATED = "escalated"
    ISSUED = "issued"
    CLOSED = "closed"


class CycleTransition(BaseModel):
    """Published on `huibao.cycle.events` once per cycle step."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: CycleKind
    period: str = Field(examples=["2026-05", "2026-Q2"])
    step: str = Field(description="The step that ran.", examples=["opened", "deadline_passed"])
    state: CycleState = Field(description="State after the step.")
    due_at: dt.datetime = Field(description="When the calendar scheduled the step.")
    ran_at: dt.datetime = Field(description="When the scheduler ran it (clock time).")
    skipped: bool = Field(
        default=False,
        description="True when the step ran late and its notifications no longer help.",
    )


class NotificationKind(StrEnum):
    """What a notification is about."""

    UPCOMING = "party_day.upcoming"
    NOT_REPORTED = "party_day.not_reported"
    ESCALATION = "party_day.escalation"
    DISPATCH = "party_day.dispatch"
    FEEDBACK = "feedback.issued"


class Notification(BaseModel):
    """Published on `huibao.notifications`, addressed to one org unit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: NotificationKind
    to: OrgUnitId
    period: str
    text: str = Field(description="Human-readable message, in Chinese.")
    details: dict[str, Any] = Field(default_factory=dict)
