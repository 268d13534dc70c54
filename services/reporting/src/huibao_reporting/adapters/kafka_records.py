"""Kafka records of `huibao.activity.submitted` as submissions, in either CloudEvents mode.

Structured mode: the value is the whole CloudEvent as JSON (`content-type:
application/cloudevents+json`). Binary mode: the attributes travel in `ce_*` headers and the
value is the JSON `data`. Nothing here raises: a record that cannot be read becomes a
submission carrying its error, so one poison record never stops the partition.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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

    def failed(reason: Reason, message: str, body: Any = None) -> Submission:
        error = FieldError(field="event", reason=reason, message=message)
        return Submission(body, raw, key, hdrs, error)

    if len(raw) > max_event_bytes:
        return failed(
            Reason.TOO_LARGE, f"the record is {len(raw)} bytes; the limit is {max_event_bytes}"
        )
    try:
        decoded: Any = decode_json(raw)
    except ValueError as e:
        return failed(Reason.NOT_JSON, f"the value is not JSON: {e}")
    if "ce_specversion" not in by_name:
        return Submission(decoded, raw, key, hdrs)
    event: dict[str, Any] = {
        attr: by_name[f"ce_{attr}"] for attr in CE_ATTRIBUTES if f"ce_{attr}" in by_name
    }
    content_type = by_name.get("content-type")
    if content_type and "datacontenttype" not in event:
        event["datacontenttype"] = content_type.split(";", 1)[0].strip()
    event["data"] = decoded
    return Submission(event, raw, key, hdrs)
