"""The CloudEvents 1.0 envelope every Huibao event travels in."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from huibao_contracts.orgunits import OrgUnitId

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event in structured JSON form.

    `source` + `id` identify a message: a repeat of the pair is a duplicate. `subject` is the
    org unit the activity belongs to. `time` is when the source platform recorded the
    activity; it decides whether a Party Day report is on time (receipt time if absent).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = Field(description="CloudEvents version.", examples=["1.0"])
    id: str = Field(
        min_length=1, max_length=200, description="Unique per source.", examples=["evt-7f3a"]
    )
    source: str = Field(
        min_length=1,
        max_length=500,
        description="URI-reference of the reporting platform.",
        examples=["/platforms/qingyuan-dangjian"],
    )
    type: str = Field(
        min_length=1,
        max_length=200,
        description="Versioned event type.",
        examples=["huibao.party_day.held.v1"],
    )
    subject: OrgUnitId = Field(description="The org unit the activity belongs to.")
    time: AwareDatetime | None = Field(
        default=None,
        description="When the source platform recorded the activity (RFC 3339 with offset).",
        examples=["2026-05-26T16:30:00+08:00"],
    )
    datacontenttype: Literal["application/json"] = Field(
        default="application/json", description="Always application/json."
    )
    dataschema: str | None = Field(default=None, max_length=500)
    traceparent: str | None = Field(
        default=None,
        max_length=55,
        description="W3C trace context (distributed tracing extension).",
    )
    tracestate: str | None = Field(default=None, max_length=512)
    data: dict[str, Any] = Field(description="The payload of `type`.")


class AcceptedExtensions(BaseModel):
    """Attributes reporting adds to an accepted event (as CloudEvents extension attributes)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    huibaoreceived: dt.datetime = Field(description="When reporting stored the event.")
