"""Turns transitions, notifications and feedback into outbox records (CloudEvent JSON).

Ids are deterministic (`kind/period/step[/unit]`) so a record resent by the outbox relay
after a failure is recognisable as a duplicate by `source` + `id`. A feedback report is
serialised once (`feedback_json`): the same bytes are stored and embedded in its event.
"""

from __future__ import annotations

import datetime as dt
import functools

import orjson
from pydantic import AwareDatetime, BaseModel, TypeAdapter

from huibao_contracts import topics
from huibao_contracts.cycles import (
    NOTIFICATION_TYPE,
    TRANSITION_TYPE,
    CycleTransition,
    Notification,
)
from huibao_contracts.envelope import STRUCTURED_CONTENT_TYPE, CloudEvent
from huibao_contracts.feedback import FEEDBACK_ISSUED_TYPE, FeedbackReport
from huibao_platform.outbox import OutboxRecord

SOURCE = "/huibao/scheduler"
_HEADERS = (("content-type", STRUCTURED_CONTENT_TYPE),)
_TIME: TypeAdapter[AwareDatetime] = TypeAdapter(AwareDatetime)


def _record(
    *,
    topic: str,
    key: str,
    event_id: str,
    type_: str,
    subject: str,
    time: dt.datetime,
    data: BaseModel,
) -> OutboxRecord:
    event = CloudEvent(
        specversion="1.0",
        id=event_id,
        source=SOURCE,
        type=type_,
        subject=subject,
        time=time,
        data=data.model_dump(mode="json"),
    )
    return OutboxRecord(
        topic=topic,
        key=key.encode(),
        value=event.model_dump_json(exclude_none=True).encode(),
        headers=_HEADERS,
    )


def transition_record(t: CycleTransition) -> OutboxRecord:
    """The record of a transition on `huibao.cycle.events`, keyed `kind:period`."""
    return _record(
        topic=topics.CYCLE_EVENTS,
        key=f"{t.kind.value}:{t.period}",
        event_id=f"{t.kind.value}/{t.period}/{t.step}",
        type_=TRANSITION_TYPE,
        subject=f"{t.kind.value}.{t.period}",
        time=t.ran_at,
        data=t,
    )


def notification_record(n: Notification, step: str, time: dt.datetime) -> OutboxRecord:
    """The record of a notification on `huibao.notifications`, keyed by the addressed unit.

    The envelope is written directly, the same JSON `CloudEvent` gives (a unit test checks
    it byte for byte): a step sends one to every branch, a million of them.
    """
    event = {
        "specversion": "1.0",
        "id": f"{n.kind.value}/{n.period}/{step}/{n.to}",
        "source": SOURCE,
        "type": NOTIFICATION_TYPE,
        "subject": n.to,
        "time": _time_json(time),
        "datacontenttype": "application/json",
        "data": {
            "kind": n.kind.value,
            "to": n.to,
            "period": n.period,
            "text": n.text,
            "details": n.details,
        },
    }
    return OutboxRecord(
        topic=topics.NOTIFICATIONS, key=n.to.encode(), value=orjson.dumps(event), headers=_HEADERS
    )


@functools.lru_cache(maxsize=16)
def _time_json(time: dt.datetime) -> orjson.Fragment:
    """An instant as `CloudEvent` writes it (a step writes the same one a million times)."""
    return orjson.Fragment(_TIME.dump_json(time))


def feedback_json(report: FeedbackReport) -> bytes:
    """The report's JSON, as stored and published."""
    return report.__pydantic_serializer__.to_json(report)


def feedback_record(report: FeedbackReport, data: bytes | None = None) -> OutboxRecord:
    """The record of a unit's feedback on `huibao.feedback.issued`, keyed by the unit.

    `data` is the report's JSON when the caller has it already (`feedback_json`). The
    envelope is written directly (the same JSON `CloudEvent` would give) so that 100,000
    reports are not validated and serialised twice.
    """
    event = {
        "specversion": "1.0",
        "id": f"feedback/{report.quarter}/{report.unit}",
        "source": SOURCE,
        "type": FEEDBACK_ISSUED_TYPE,
        "subject": report.unit,
        "time": report.issued_at,
        "datacontenttype": "application/json",
        "data": orjson.Fragment(feedback_json(report) if data is None else data),
    }
    return OutboxRecord(
        topic=topics.FEEDBACK_ISSUED,
        key=report.unit.encode(),
        value=orjson.dumps(event, option=orjson.OPT_UTC_Z),
        headers=_HEADERS,
    )
