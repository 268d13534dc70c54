"""Records of `huibao.activity.accepted`: what a consumer may rely on, checked in one pass.

A record is a structured CloudEvent of a known activity type whose `data` is that type's
payload model and which carries reporting's `huibaoreceived` extension. Reporting writes
them after its intake validated the event; a consumer validates them again against the
same models (the topic can be written by anything the broker lets in), with one
`TypeAdapter` of the union of every type, discriminated by `type` and run on the raw
bytes, and turns a failure into the reject-record fields (`FieldError`s with their reason).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Final, Literal, Union

from pydantic import Field, TypeAdapter, ValidationError, create_model
from pydantic_core import ErrorDetails

from huibao_contracts.activities import ACTIVITY_TYPES, ActivityBase
from huibao_contracts.envelope import MAX_ATTRIBUTES, CloudEvent
from huibao_contracts.rejects import FieldError, Reason
from huibao_contracts.storable import StorableInstant


class AcceptedCloudEvent(CloudEvent):
    """Base of the accepted-record models: the envelope, a typed payload, `huibaoreceived`."""

    data: ActivityBase  # type: ignore[assignment]
    huibaoreceived: StorableInstant = Field(description="When reporting stored the event.")
    MAX_ATTRIBUTES: ClassVar[int] = MAX_ATTRIBUTES + 2
    """The integrator's, and what reporting may add: `huibaoreceived`, `datacontenttype`."""


def _model(type_name: str, payload: type[ActivityBase]) -> type[AcceptedCloudEvent]:
    fields: dict[str, Any] = {
        "type": (Literal[type_name], Field(description="Event type.")),
        "data": (payload, Field(description=f"The payload of `{type_name}`.")),
    }
    model: type[AcceptedCloudEvent] = create_model(
        f"Accepted{payload.__name__}", __base__=AcceptedCloudEvent, __module__=__name__, **fields
    )
    return model


ACCEPTED_MODELS: Final[dict[str, type[AcceptedCloudEvent]]] = {
    t: _model(t, payload) for t, payload in ACTIVITY_TYPES.items()
}
"""The accepted-record model of every activity type."""

_ANY_TYPE: Any = Union[tuple(ACCEPTED_MODELS.values())]  # noqa: UP007
AcceptedEvent: Any = Annotated[_ANY_TYPE, Field(discriminator="type")]
"""One accepted record, of any type (discriminated by `type`)."""
ACCEPTED_EVENT: Final[TypeAdapter[AcceptedCloudEvent]] = TypeAdapter(AcceptedEvent)
"""Validates one record value: `ACCEPTED_EVENT.validate_json(raw)`."""


def validate_accepted(raw: bytes) -> AcceptedCloudEvent | list[FieldError]:
    """The record's event, or why it is refused (field paths from the event root)."""
    try:
        return ACCEPTED_EVENT.validate_json(raw)
    except ValidationError as e:
        return refusal(e.errors())


def refusal(errors: Sequence[ErrorDetails]) -> list[FieldError]:
    """Reject-record errors for the validation errors of an accepted record."""
    out: list[FieldError] = []
    for e in errors:
        kind, loc = e["type"], tuple(str(p) for p in e.get("loc", ()))
        message = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        if kind == "json_invalid":
            out.append(FieldError(field="event", reason=Reason.NOT_JSON, message=message))
        elif kind == "union_tag_invalid":
            known = ", ".join(sorted(ACCEPTED_MODELS))
            ctx: dict[str, Any] = dict(e.get("ctx") or {})
            out.append(
                FieldError(
                    field="type",
                    reason=Reason.UNKNOWN_TYPE,
                    message=f"unknown type {ctx.get('tag', '')!r}; known types: {known}",
                )
            )
        elif kind in ("union_tag_not_found", "model_attributes_type", "model_type"):
            out.append(
                FieldError(field="type" if kind == "union_tag_not_found" else "event",
                           reason=Reason.INVALID_ENVELOPE, message=message)
            )  # fmt: skip
        else:
            path = loc[1:] if loc and loc[0] in ACCEPTED_MODELS else loc
            reason = Reason.INVALID_FIELD if path[:1] == ("data",) else Reason.INVALID_ENVELOPE
            out.append(FieldError(field=".".join(path) or "event", reason=reason, message=message))
    return out or [FieldError(field="event", reason=Reason.INVALID_ENVELOPE, message="invalid")]
