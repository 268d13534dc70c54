"""Parsing a submitted event: the CloudEvents envelope, a known type, its payload model.

Every failure becomes a `FieldError` whose `field` is the dotted path from the event root
(`subject`, `time`, `data.attendees`) with a stable `Reason` code.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from huibao_contracts.activities import ACTIVITY_TYPES, ActivityBase
from huibao_contracts.envelope import AcceptedExtensions, CloudEvent
from huibao_contracts.rejects import FieldError, Reason


@dataclass(frozen=True, slots=True)
class Submission:
    """One event as it arrived, before validation.

    `body` is the decoded JSON (an object for an event); `raw` the original bytes, published
    with a rejection; `error` a failure already found while decoding (not JSON, too large).
    """

    body: Any
    raw: bytes
    key: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    error: FieldError | None = None

    def ident(self) -> tuple[str | None, str | None]:
        """The event's `id` and `source` when they can be read, for the answer."""
        if not isinstance(self.body, dict):
            return None, None
        ident, source = self.body.get("id"), self.body.get("source")
        return (
            ident if isinstance(ident, str) else None,
            source if isinstance(source, str) else None,
        )


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    """A well-formed event of a known type with a valid payload."""

    envelope: CloudEvent
    payload: ActivityBase

    @property
    def key(self) -> tuple[str, str]:
        """`source` + `id`: what identifies a message."""
        return self.envelope.source, self.envelope.id

    @property
    def subject(self) -> str:
        """The org unit the activity belongs to."""
        return self.envelope.subject

    @property
    def month(self) -> dt.date:
        """First day of the activity's month."""
        return self.payload.date.replace(day=1)


def _message(e: ErrorDetails) -> str:
    msg = str(e.get("msg", "invalid"))
    return msg.removeprefix("Value error, ")


def _path(prefix: str, loc: Sequence[int | str]) -> str:
    parts = [prefix] if prefix else []
    parts += [str(p) for p in loc]
    return ".".join(parts) or "event"


def field_errors(
    exc: ValidationError, prefix: str, reason: Reason, fields: Sequence[str] = ()
) -> list[FieldError]:
    """Translate a pydantic error; a model-level error naming a field is put on that field."""
    out = []
    for e in exc.errors():
        loc = tuple(e.get("loc", ()))
        message = _message(e)
        if not loc and (first := message.split(" ", 1)[0]) in fields:
            loc = (first,)
        out.append(FieldError(field=_path(prefix, loc), reason=reason, message=message))
    return out


def decode_json(raw: bytes) -> Any:
    """Decode JSON text; raise ValueError when it is not JSON.

    A number beyond a double's range (`1e400`) is valid JSON: it decodes to infinity, so that
    only the event holding it is refused, by field, instead of the whole body.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        if "infinity" not in str(e):
            raise
        return json.loads(raw, parse_constant=_not_json_constant)


def _not_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def nul_path(value: Any, path: str = "") -> str | None:
    """The dotted path of the first text (key or value) holding U+0000, if any.

    JSON allows `\\u0000` but no text column or jsonb value in PostgreSQL can hold it, and no
    report needs it: such events are refused by name instead of failing at storage.
    """
    try:  # a cheap first look: JSON text always escapes U+0000
        if b"\\u0000" not in orjson.dumps(value):
            return None
    except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits: look at every text
        pass
    return _nul_path(value, path)


def _nul_path(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return (path or "event") if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            here = f"{path}.{k}" if path else str(k)
            if "\x00" in str(k):
                return here
            if (found := _nul_path(v, here)) is not None:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if (found := _nul_path(v, f"{path}.{i}" if path else str(i))) is not None:
                return found
    return None


def parse_event(body: Any) -> ParsedEvent | list[FieldError]:
    """Validate the envelope, the type and the payload of one event."""
    if not isinstance(body, dict):
        return [
            FieldError(
                field="event",
                reason=Reason.INVALID_ENVELOPE,
                message="an event must be a JSON object",
            )
        ]
    if (where := nul_path(body)) is not None:
        return [
            FieldError(
                field=where,
                reason=Reason.INVALID_FIELD,
                message="text must not contain the NUL character (U+0000)",
            )
        ]
    try:
        envelope = CloudEvent.model_validate(body)
    except ValidationError as e:
        names = tuple(k for k in body if isinstance(k, str))  # an extension's error names it
        return field_errors(e, "", Reason.INVALID_ENVELOPE, names)
    model = ACTIVITY_TYPES.get(envelope.type)
    if model is None:
        known = ", ".join(sorted(ACTIVITY_TYPES))
        return [
            FieldError(
                field="type",
                reason=Reason.UNKNOWN_TYPE,
                message=f"unknown type {envelope.type!r}; known types: {known}",
            )
        ]
    try:
        payload = model.model_validate(envelope.data)
    except ValidationError as e:
        return field_errors(e, "data", Reason.INVALID_FIELD, tuple(model.model_fields))
    return ParsedEvent(envelope, payload)


def normalised(
    event: ParsedEvent, received: dt.datetime, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The structured CloudEvent published on `huibao.activity.accepted`: the integrator's
    envelope, `data` normalised by the payload model (pass it when already dumped), and the
    `huibaoreceived` extension (`AcceptedExtensions`)."""
    out = event.envelope.model_dump(mode="json", exclude_none=True, exclude={"data"})
    out["data"] = event.payload.model_dump(mode="json") if data is None else data
    out.update(AcceptedExtensions(huibaoreceived=received).attributes())
    return out
