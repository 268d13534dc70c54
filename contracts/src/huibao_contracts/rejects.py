"""Reason codes of refused events: stable, machine-readable, documented for integrators."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Reason(StrEnum):
    """Why an event or a field was refused."""

    NOT_JSON = "not_json"
    INVALID_ENVELOPE = "invalid_envelope"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_FIELD = "invalid_field"
    UNKNOWN_UNIT = "unknown_unit"
    UNIT_INACTIVE = "unit_inactive"
    WRONG_LEVEL = "wrong_level"
    FUTURE_DATE = "future_date"
    STALE_REVISION = "stale_revision"
    CONFLICTING_ACTIVITY = "conflicting_activity"
    OUT_OF_SCOPE = "out_of_scope"
    TOO_LARGE = "too_large"
    UNSTORABLE = "unstorable"
    """PostgreSQL refused a value of the event although it validated (a second line of
    defence: validation is meant to refuse every such value by name)."""


class FieldError(BaseModel):
    """One problem with one field."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: str = Field(
        description="Dotted path of the field, from the event root.", examples=["data.attendees"]
    )
    reason: Reason
    message: str = Field(examples=["attendees cannot exceed members"])
