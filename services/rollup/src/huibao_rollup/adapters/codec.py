"""Decoding Kafka records: accepted activity events and org-unit changes.

An accepted record is validated against the contract models (`huibao_contracts.accepted`:
the envelope, the payload model of its type, the `huibaoreceived` extension), in one pass
over the raw bytes: the topic can be written by anything the broker lets in, and a record
that fails is refused with its reasons (the consumer sends it to the reject topic), never
applied.
"""

from __future__ import annotations

import hashlib

from pydantic import ValidationError

from huibao_contracts.accepted import ACCEPTED_EVENT, refusal
from huibao_contracts.orgunits import OrgUnitChange
from huibao_contracts.rejects import FieldError
from huibao_platform.logs import get_logger
from huibao_rollup.domain.model import ActivityEvent

log = get_logger(__name__)


def decode_event(value: bytes | None, shard: int) -> ActivityEvent | list[FieldError]:
    """The event in a record of `huibao.activity.accepted`, or why it is refused."""
    try:
        doc = ACCEPTED_EVENT.validate_json(value or b"")
    except ValidationError as e:
        errors = refusal(e.errors())
        log.warning(
            "accepted_record_refused",
            shard=shard,
            reason=str(errors[0].reason),
            field=errors[0].field,
            error=errors[0].message,
        )
        return errors
    return ActivityEvent(
        source=doc.source,
        id=doc.id,
        type=doc.type,
        unit=doc.subject,
        time=doc.time,
        received=doc.huibaoreceived,
        data=doc.data.model_dump(mode="json"),
        shard=shard,
    )


def record_key(value: bytes | None, event: ActivityEvent | None) -> str:
    """What identifies a record when checking that the broker still holds it."""
    if event is not None:
        return event.message_key
    return "sha256:" + hashlib.sha256(value or b"").hexdigest()


def decode_change(value: bytes | None) -> OrgUnitChange | None:
    """The change in a record of `huibao.orgunit.changes`, or None when unreadable."""
    try:
        return OrgUnitChange.model_validate_json(value or b"")
    except ValidationError as e:
        log.warning("undecodable_orgunit_change", error=str(e))
        return None
