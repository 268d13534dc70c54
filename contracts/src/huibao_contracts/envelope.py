"""The CloudEvents 1.0 envelope every Huibao event travels in."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from huibao_contracts.orgunits import OrgUnitId
from huibao_contracts.storable import INT4_MAX, NUL_MESSAGE, StorableInstant, Text

ATTRIBUTE_NAME_PATTERN = "^[a-z0-9]{1,20}$"
"""CloudEvents 1.0: attribute names are lower-case letters and digits, at most 20 (an
ECMA-262 pattern, as in JSON Schema: `$` is the end of the name)."""
EXTENSION_NAME = re.compile(r"[a-z0-9]{1,20}")
"""The same rule for `fullmatch` (Python's `$` would also match before a final newline)."""
MAX_ATTRIBUTES = 31
"""Members of one event at most: the 11 attributes defined here (`data` included) and 20
extensions, counted together (what JSON Schema's `maxProperties` can say)."""
MAX_EXTENSION_TEXT = 1000

_JSON_KINDS = {type(None): "null", list: "an array", dict: "an object", float: "a fraction"}


def _one_kind(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """One error naming what the value is, instead of one per member of the union."""
    try:
        return handler(value)
    except ValidationError:
        kind = _JSON_KINDS.get(type(value), type(value).__name__)
        raise PydanticCustomError(
            "extension_value",
            "an extension attribute is a string, an integer or a boolean, not {kind}",
            {"kind": kind},
        ) from None


ExtensionValue = Annotated[str | int | bool, WrapValidator(_one_kind)]
"""CloudEvents attribute types as they appear in JSON: String, Integer, Boolean (and the
string-encoded URI, URI-reference, Binary and Timestamp)."""

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
KAFKA_STRUCTURED_CONTENT_TYPE = r"[ \t]*application/(cloudevents\+)?json[ \t]*(;[\s\S]*)?"
"""`content-type` of a structured Kafka record, when it has one: the CloudEvents media type,
or `application/json` (what the cloudevents SDK's 1.x API sends), with any parameters.
For `re.fullmatch`; the AsyncAPI documents carry it anchored (`^…$`)."""
KAFKA_BINARY_CONTENT_TYPE = r"[ \t]*application/json[ \t]*(;[\s\S]*)?"
"""`content-type` of a binary Kafka record, when it has one (it becomes `datacontenttype`)."""


def _extension_rule(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """The envelope's rule for attributes it does not define, in JSON Schema terms."""
    schema["propertyNames"] = {
        "pattern": ATTRIBUTE_NAME_PATTERN,
        "description": "CloudEvents attribute names: 1-20 lower-case letters or digits.",
    }
    schema["additionalProperties"] = {
        "description": "Extension attributes: passed through, never acted upon.",
        "anyOf": [
            {"type": "string", "maxLength": MAX_EXTENSION_TEXT},
            {"type": "integer", "minimum": -INT4_MAX - 1, "maximum": INT4_MAX},
            {"type": "boolean"},
        ],
    }
    limit = getattr(model, "MAX_ATTRIBUTES", MAX_ATTRIBUTES)
    schema["maxProperties"] = limit


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event in structured JSON form.

    `source` + `id` identify a message: a repeat of the pair is a duplicate. `subject` is the
    org unit the activity belongs to. `time` is when the source platform recorded the
    activity; it decides whether a Party Day report is on time (receipt time if absent).
    Extension attributes (such as the SDKs' `partitionkey`) are accepted and passed on when
    their names follow CloudEvents (`[a-z0-9]{1,20}`) and their values are strings (up to
    1,000 characters), 32-bit integers or booleans; they never change Huibao's behaviour. An
    event has at most 31 attributes in all, `data` and extensions included.
    """

    model_config = ConfigDict(frozen=True, extra="allow", json_schema_extra=_extension_rule)
    __pydantic_extra__: dict[str, ExtensionValue] = Field(init=False)
    MAX_ATTRIBUTES: ClassVar[int] = MAX_ATTRIBUTES

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
        if len(self.model_fields_set | extra.keys()) > self.MAX_ATTRIBUTES:  # both, once
            raise ValueError(
                f"an event has at most {self.MAX_ATTRIBUTES} attributes, extensions included"
            )
        for name, value in extra.items():
            if not EXTENSION_NAME.fullmatch(name):
                raise ValueError(
                    f"{name!r} is not an attribute of the envelope; extension attribute names"
                    " are 1-20 lower-case letters or digits"
                )
            # messages start with the attribute's name: the error is put on that field
            if isinstance(value, str) and len(value) > MAX_EXTENSION_TEXT:
                raise ValueError(
                    f"{name} is longer than {MAX_EXTENSION_TEXT} characters (extension attribute)"
                )
            if isinstance(value, str) and "\x00" in value:
                raise ValueError(f"{name} (extension attribute): {NUL_MESSAGE}")
            if isinstance(value, int) and not -INT4_MAX - 1 <= value <= INT4_MAX:
                raise ValueError(
                    f"{name} is an extension attribute: a CloudEvents Integer is 32 bits"
                    f" (-2147483648 to 2147483647), not {value}"
                )
        return self


RECEIVED_EXTENSION: Final = "huibaoreceived"
"""The extension attribute reporting adds to every accepted event: when it stored it."""


class AcceptedExtensions(BaseModel):
    """Attributes reporting adds to an accepted event (as CloudEvents extension attributes);
    `RECEIVED_EXTENSION` names the one field."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    huibaoreceived: dt.datetime = Field(description="When reporting stored the event.")

    def attributes(self) -> dict[str, str]:
        """The attributes as they are written into the event: RFC 3339 text."""
        return {RECEIVED_EXTENSION: self.huibaoreceived.isoformat()}
