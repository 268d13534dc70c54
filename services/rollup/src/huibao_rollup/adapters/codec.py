"""Decoding Kafka records: accepted activity events and org-unit changes.

An accepted record is a structured CloudEvent (JSON) with the extension attribute
`huibaoreceived`; reporting validated it already, so only what the rollup needs is read.
A record that cannot be read is skipped with a warning: it can never be applied.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import orjson
from pydantic import ValidationError

from huibao_contracts.orgunits import OrgUnitChange
from huibao_platform.logs import get_logger
from huibao_rollup.domain.model import ActivityEvent

log = get_logger(__name__)


def _instant(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    instant = dt.datetime.fromisoformat(value)
    return instant if instant.tzinfo else instant.replace(tzinfo=dt.UTC)


def decode_event(value: bytes | None, shard: int) -> ActivityEvent | None:
    """The event in a record of `huibao.activity.accepted`, or None when unreadable."""
    try:
        doc = orjson.loads(value or b"")
        data = doc["data"]
        time = _instant(doc.get("time"))
        received = _instant(doc.get("huibaoreceived")) or time or dt.datetime.now(dt.UTC)
        event = ActivityEvent(
            source=str(doc["source"]),
            id=str(doc["id"]),
            type=str(doc["type"]),
            unit=str(doc["subject"]),
            time=time,
            received=received,
            data=data,
            shard=shard,
        )
        if not isinstance(data, dict) or "activity_id" not in data:
            raise ValueError("data has no activity_id")
        _ = (event.date, event.revision)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        log.warning("undecodable_event", shard=shard, error=str(e))
        return None
    return event


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
