"""The CloudEvents 1.0 envelope every Huibao event travels in."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from huibao_contracts.orgunits import OrgUnitId
from huibao_contracts.storable import INT4_MAX, NUL_MESSAGE, StorableInstant, Text

EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
"""CloudEvents 1.0: extension attribute names are lower-case letters and digits, at most 20."""
MAX_EXTENSIONS = 20

ExtensionValue = str | int | bool
"""CloudEvents attribute types as they appear in JSON: String, Integer, Boolean (and the
string-encoded URI, URI-reference, Binary and Timestamp)."""

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event in structured JSON form.

    `source` + `id` identify a message: a repeat of the pair is a duplicate. `subject` is the
    org unit the activity belongs to. `time` is when the source platform recorded the
    activity; it decides whether a Party Day report is on time (receipt time if absent).
    Extension attributes (such as the SDKs' `partitionkey`) are accepted and passed on when
    their names follow CloudEvents (`[a-z0-9]{1,20}`) and their values are strings, integers
    or booleans; they never change Huibao's behaviour.
    """

    model_config = ConfigDict(frozen=True, extra="allow")
    __pydantic_extra__: dict[str, ExtensionValue] = Field(init=False)

    specversion: Literal["1.0"] = Field(description="CloudEvents version.", examples=["1.0"])
    id: Text = Field(
        min_length=1, max_length=200, description="Unique per source.", examples=["evt-7f3a"]
    )
    source: Text = Field(
        min_length=1,
        max_length=500,
        description="URI-reference of the reporting platform.",
        examples=["/platforms/qingyuan-dangjian"],
    )
    type: Text = Field(
        min_length=1,
        max_length=200,
        description="Versioned event type.",
        examples=["huibao.party_day.held.v1"],
    )
    subject: OrgUnitId = Field(description="The org unit the activity belongs to.")
    time: StorableInstant | None = Field(
        default=None,
        description="When the source platform recorded the activity (RFC 3339 with offset;"
        " the offset within ±15:59, the year from 1000 to 9998).",
        examples=["2026-05-26T16:30:00+08:00"],
    )
    datacontenttype: Literal["application/json"] = Field(
        default="application/json", description="Always application/json."
    )
    dataschema: Text | None = Field(default=None, max_length=500)
    traceparent: Text | None = Field(
        default=None,
        max_length=55,
        description="W3C trace context (distributed tracing extension).",
    )
    tracestate: Text | None = Field(default=None, max_length=512)
    data: dict[str, Any] = Field(description="The payload of `type`.")

    @model_validator(mode="after")
    def _extension_names(self) -> CloudEvent:
        extra = self.__pydantic_extra__ or {}
        if len(extra) > MAX_EXTENSIONS:
            raise ValueError(f"at most {MAX_EXTENSIONS} extension attributes are accepted")
        for name, value in extra.items():
            if not EXTENSION_NAME.match(name):
                raise ValueError(
                    f"{name!r} is not an attribute of the envelope; extension attribute names"
                    " are 1-20 lower-case letters or digits"
                )
            # messages start with the attribute's name: the error is put on that field
            if isinstance(value, str) and len(value) > 1000:
                raise ValueError(f"{name} is longer than 1000 characters (extension attribute)")
            if isinstance(value, str) and "\x00" in value:
                raise ValueError(f"{name} (extension attribute): {NUL_MESSAGE}")
            if isinstance(value, int) and not -INT4_MAX - 1 <= value <= INT4_MAX:
                raise ValueError(
                    f"{name} is an extension attribute: a CloudEvents Integer is 32 bits"
                    f" (-2147483648 to 2147483647), not {value}"
                )
        return self


class AcceptedExtensions(BaseModel):
    """Attributes reporting adds to an accepted event (as CloudEvents extension attributes)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    huibaoreceived: dt.datetime = Field(description="When reporting stored the event.")
