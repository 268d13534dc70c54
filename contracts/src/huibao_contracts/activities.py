"""Activity payloads: the `data` of each versioned activity type.

Every payload carries `activity_id` (stable across corrections), `revision` (higher wins),
`date` (local date of the activity) and may carry `retracted: true`. Models are closed;
evolution is additive; a breaking change is a new `.vN` type.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from huibao_contracts.orgunits import Level
from huibao_contracts.storable import StorableDate, Text

TEXT = 200
"""Length limit of short text fields such as a theme or a topic."""


class ActivityBase(BaseModel):
    """Fields every activity payload carries."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    activity_id: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="Stable id of the activity; a correction reuses it with a higher revision.",
        examples=["pd-br-0001-2026-05"],
    )
    revision: int = Field(
        default=1, ge=1, le=1_000_000, description="Revision; the highest wins.", examples=[1]
    )
    date: StorableDate = Field(
        description="Local date the activity took place (year 1000 to 9998).",
        examples=["2026-05-26"],
    )
    retracted: bool = Field(
        default=False, description="True withdraws the activity: it no longer counts anywhere."
    )


class AgendaItem(StrEnum):
    """Items of a theme Party Day's agenda."""

    OATH_RENEWAL = "oath_renewal"
    CONSTITUTION_READING = "constitution_reading"
    PARTY_SPIRIT_ANALYSIS = "party_spirit_analysis"
    DEMOCRATIC_DELIBERATION = "democratic_deliberation"
    DUES_COLLECTION = "dues_collection"
    COLLECTIVE_STUDY = "collective_study"
    VOLUNTEER_SERVICE = "volunteer_service"


class PartyDayHeld(ActivityBase):
    """`huibao.party_day.held.v1`: a branch held its monthly theme Party Day (主题党日)."""

    members: int = Field(
        ge=0, le=100_000, description="Party members of the branch.", examples=[31]
    )
    attendees: int = Field(ge=0, le=100_000, description="Members who attended.", examples=[28])
    theme: Text = Field(
        default="",
        max_length=TEXT,
        description="Theme of the day.",
        examples=["学习党的二十大精神"],
    )
    agenda: tuple[AgendaItem, ...] = Field(
        default=(), max_length=20, description="Agenda items held.", examples=[["oath_renewal"]]
    )
    lesson: Text | None = Field(
        default=None,
        max_length=TEXT,
        description="The month's lesson (一课).",
        examples=["党章学习"],
    )
    film: Text | None = Field(
        default=None,
        max_length=TEXT,
        description="The month's film (一片).",
        examples=["《焦裕禄》"],
    )
    practice: Text | None = Field(
        default=None,
        max_length=TEXT,
        description="The month's practice (一实践).",
        examples=["环境整治"],
    )

    @model_validator(mode="after")
    def _attendees_within_members(self) -> PartyDayHeld:
        if self.attendees > self.members:
            raise ValueError("attendees cannot exceed members")
        return self


class SpeakerRole(StrEnum):
    """Who gave a party lesson."""

    BRANCH_SECRETARY = "branch_secretary"
    LEADING_CADRE = "leading_cadre"
    ORDINARY_MEMBER = "ordinary_member"
    EXPERT = "expert"
    DEPUTY = "deputy"
    MODEL_WORKER = "model_worker"


class LessonFormat(StrEnum):
    """How a party lesson was delivered."""

    ON_SITE = "on_site"
    FIELD_TEACHING = "field_teaching"
    REMOTE = "remote"
    ONLINE = "online"


class LessonDelivered(ActivityBase):
    """`huibao.lesson.delivered.v1`: a party lesson or micro-lesson (党课/微党课) was given."""

    speaker_role: SpeakerRole = Field(
        description="Role of the speaker.", examples=["branch_secretary"]
    )
    topic: Text = Field(
        min_length=1, max_length=TEXT, description="Topic.", examples=["我来讲党课"]
    )
    format: LessonFormat = Field(default=LessonFormat.ON_SITE, description="Delivery format.")
    audience: int = Field(ge=0, le=1_000_000, description="People who attended.", examples=[45])
    duration_minutes: int = Field(default=45, ge=1, le=1440, description="Length in minutes.")


class TargetGroup(StrEnum):
    """Who a training class was for."""

    SECRETARIES = "secretaries"
    BACKBONE = "backbone"
    ORDINARY = "ordinary"
    ACTIVISTS = "activists"
    DEVELOPMENT_TARGETS = "development_targets"


class TrainingDuration(StrEnum):
    """How a training's length is reported, for its class hours (`huibao_contracts.class_hours`)."""

    HOURS = "hours"
    HALF_DAY = "half_day"
    FULL_DAY = "full_day"


class TrainingHeld(ActivityBase):
    """`huibao.training.held.v1`: a training class (培训班) session was held."""

    target_group: TargetGroup = Field(description="Target group.", examples=["secretaries"])
    participants: int = Field(ge=0, le=1_000_000, description="Participants.", examples=[96])
    hours: float = Field(ge=0, le=1000, description="Training hours of the session.", examples=[8])
    duration: TrainingDuration = Field(
        default=TrainingDuration.HOURS,
        description="How the class hours are counted: from `hours` (the default, and what"
        " payloads without this field mean), or per half day or full day of `days`.",
    )
    days: int = Field(
        default=1,
        ge=1,
        le=366,
        description="Half days or full days of the training (with `duration` half_day or"
        " full_day only).",
    )

    @field_validator("days")
    @classmethod
    def _days_need_a_day_duration(cls, days: int, info: ValidationInfo) -> int:
        # a field validator, so that the refusal names `days` (duration is validated first)
        if (
            days != 1
            and info.data.get("duration", TrainingDuration.HOURS) is TrainingDuration.HOURS
        ):
            raise ValueError("days needs duration half_day or full_day")
        return days


class OutreachHeld(ActivityBase):
    """`huibao.outreach.held.v1`: a policy outreach lecture (宣讲) with its survey."""

    lecturer: Text | None = Field(
        default=None, max_length=TEXT, description="Lecturer (role or name)."
    )
    station: Text | None = Field(default=None, max_length=TEXT, description="Station or venue.")
    audience: int = Field(ge=0, le=1_000_000, description="People reached.", examples=[120])
    expected: int = Field(ge=0, le=1_000_000, description="People expected.", examples=[130])
    present: int = Field(ge=0, le=1_000_000, description="People present.", examples=[120])
    responses: int = Field(default=0, ge=0, le=1_000_000, description="Survey responses.")
    satisfied: int = Field(default=0, ge=0, le=1_000_000, description="Satisfied responses.")
    good: int = Field(default=0, ge=0, le=1_000_000, description="Responses rating it good.")

    @model_validator(mode="after")
    def _consistent(self) -> OutreachHeld:
        if self.satisfied > self.responses:
            raise ValueError("satisfied cannot exceed responses")
        if self.good > self.responses:
            raise ValueError("good cannot exceed responses")
        return self


class VolunteerServed(ActivityBase):
    """`huibao.volunteer.served.v1`: a volunteer service (志愿服务) activity."""

    volunteers: int = Field(
        ge=0, le=1_000_000, description="Volunteers taking part.", examples=[12]
    )
    served: int = Field(ge=0, le=10_000_000, description="People served.", examples=[200])
    hours: float = Field(default=0, ge=0, le=100_000, description="Volunteer hours in all.")


class FeedbackCollected(ActivityBase):
    """`huibao.feedback.collected.v1`: items collected in 走找想促 feedback collection."""

    items: int = Field(ge=0, le=1_000_000, description="Items collected.", examples=[12])


class FeedbackResolved(ActivityBase):
    """`huibao.feedback.resolved.v1`: collected feedback items resolved."""

    items: int = Field(ge=0, le=1_000_000, description="Items resolved.", examples=[11])
    satisfaction: float | None = Field(
        default=None, ge=0, le=1, description="Share of people satisfied with the resolution."
    )


class ScreeningHeld(ActivityBase):
    """`huibao.screening.held.v1`: a film from the library (片库) was screened."""

    film: Text = Field(
        min_length=1, max_length=TEXT, description="Film title.", examples=["《焦裕禄》"]
    )
    audience: int = Field(ge=0, le=1_000_000, description="Audience.", examples=[60])


class PointsAwarded(ActivityBase):
    """`huibao.points.awarded.v1`: member points (积分管理) awarded or deducted."""

    member: str = Field(
        min_length=8,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Pseudonymous member reference (never a name or an id-card number).",
        examples=["m_3f9a2c71d4"],
    )
    points: int = Field(
        ge=-1000, le=1000, description="Points; negative for a deduction.", examples=[5]
    )
    reason: Text = Field(min_length=1, max_length=TEXT, description="Why.", examples=["志愿服务"])


PARTY_DAY_TYPE: Final = "huibao.party_day.held.v1"
LESSON_TYPE: Final = "huibao.lesson.delivered.v1"
TRAINING_TYPE: Final = "huibao.training.held.v1"
OUTREACH_TYPE: Final = "huibao.outreach.held.v1"
VOLUNTEER_TYPE: Final = "huibao.volunteer.served.v1"
FEEDBACK_COLLECTED_TYPE: Final = "huibao.feedback.collected.v1"
FEEDBACK_RESOLVED_TYPE: Final = "huibao.feedback.resolved.v1"
SCREENING_TYPE: Final = "huibao.screening.held.v1"
POINTS_TYPE: Final = "huibao.points.awarded.v1"
"""The CloudEvent `type` of each activity: the one place these names are written."""

ACTIVITY_TYPES: Final[dict[str, type[ActivityBase]]] = {
    PARTY_DAY_TYPE: PartyDayHeld,
    LESSON_TYPE: LessonDelivered,
    TRAINING_TYPE: TrainingHeld,
    OUTREACH_TYPE: OutreachHeld,
    VOLUNTEER_TYPE: VolunteerServed,
    FEEDBACK_COLLECTED_TYPE: FeedbackCollected,
    FEEDBACK_RESOLVED_TYPE: FeedbackResolved,
    SCREENING_TYPE: ScreeningHeld,
    POINTS_TYPE: PointsAwarded,
}
"""Every activity type Huibao accepts, with its payload model."""

ALLOWED_LEVELS: Final[dict[str, frozenset[Level]]] = {
    t: frozenset({Level.BRANCH}) if t == PARTY_DAY_TYPE else frozenset(Level)
    for t in ACTIVITY_TYPES
}
"""Levels that may report each type: a Party Day is held by a branch; the rest by any unit."""
