"""Kafka records of `huibao.activity.submitted` as submissions, in either CloudEvents mode.

Structured mode: the value is the whole CloudEvent as JSON (`content-type:
application/cloudevents+json`). Binary mode: the attributes travel in `ce_*` headers and the
value is the JSON `data`. A `content-type` header, when present, must say so
(`KAFKA_STRUCTURED_CONTENT_TYPE`, `KAFKA_BINARY_CONTENT_TYPE`). Nothing here raises: a
record that cannot be read becomes a submission carrying its error, so one poison record
never stops the partition.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from huibao_contracts.envelope import (
    KAFKA_BINARY_CONTENT_TYPE,
    KAFKA_STRUCTURED_CONTENT_TYPE,
    STRUCTURED_CONTENT_TYPE,
)
from huibao_contracts.rejects import FieldError, Reason
from huibao_reporting.domain.events import Submission, decode_json

CE_ATTRIBUTES = (
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
    "traceparent",
    "tracestate",
)
"""Attributes read from `ce_*` headers in binary mode (other extensions are ignored)."""
STRUCTURED = re.compile(KAFKA_STRUCTURED_CONTENT_TYPE)
BINARY = re.compile(KAFKA_BINARY_CONTENT_TYPE)


def _headers(raw: Sequence[tuple[str, bytes | None]] | None) -> tuple[tuple[str, str], ...]:
    if not raw:
        return ()
    return tuple([(str(k), v.decode("utf-8", "replace") if v else "") for k, v in raw])


def submission_from_record(
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]] | None,
    max_event_bytes: int,
) -> Submission:
    """Decode one Kafka record; errors (too large, not JSON) ride on the submission."""
    raw = value or b""
    hdrs = _headers(headers)
    by_name = {k.lower(): v for k, v in hdrs}

    def failed(reason: Reason, message: str, body: Any = None, field: str = "event") -> Submission:
        error = FieldError(field=field, reason=reason, message=message)
        return Submission(body, raw, key, hdrs, error)

    if len(raw) > max_event_bytes:
        return failed(
            Reason.TOO_LARGE, f"the record is {len(raw)} bytes; the limit is {max_event_bytes}"
        )
    try:
        decoded: Any = decode_json(raw)
    except ValueError as e:
        return failed(Reason.NOT_JSON, f"the value is not JSON: {e}")
    content_type = by_name.get("content-type")
    if "ce_specversion" not in by_name:
        if content_type is not None and not STRUCTURED.fullmatch(content_type):
            return failed(
                Reason.INVALID_ENVELOPE,
                f"content type {content_type!r} is not a structured CloudEvent; use"
                f" {STRUCTURED_CONTENT_TYPE} or application/json (or ce_* headers: binary mode)",
                decoded,
                "content-type",
            )
        return Submission(decoded, raw, key, hdrs)
    event: dict[str, Any] = {
        attr: by_name[f"ce_{attr}"] for attr in CE_ATTRIBUTES if f"ce_{attr}" in by_name
    }
    if content_type is not None:
        if not BINARY.fullmatch(content_type):
            return failed(
                Reason.INVALID_ENVELOPE,
                f"content type {content_type!r} is not accepted in binary mode; the value"
                " is the JSON data: use application/json",
                decoded,
                "content-type",
            )
        event.setdefault("datacontenttype", content_type.split(";", 1)[0].strip(" \t"))
    event["data"] = decoded
    return Submission(event, raw, key, hdrs)
