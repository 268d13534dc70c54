"""Turns transitions, notifications and feedback into outbox records (CloudEvent JSON).

Ids are deterministic (`kind/period/step[/unit]`) so a record resent by the outbox relay
after a failure is recognisable as a duplicate by `source` + `id`.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel

from huibao_contracts import topics
from huibao_contracts.cycles import CycleTransition, Notification
from huibao_contracts.envelope import STRUCTURED_CONTENT_TYPE, CloudEvent
from huibao_platform.outbox import OutboxRecord
from huibao_scheduler.domain.feedback import FeedbackReport

SOURCE = "/huibao/scheduler"
TRANSITION_TYPE = "huibao.cycle.transition.v1"
NOTIFICATION_TYPE = "huibao.notification.v1"
FEEDBACK_TYPE = "huibao.feedback.issued.v1"
_HEADERS = (("content-type", STRUCTURED_CONTENT_TYPE),)


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
    """The record of a notification on `huibao.notifications`, keyed by the addressed unit."""
    return _record(
        topic=topics.NOTIFICATIONS,
        key=n.to,
        event_id=f"{n.kind.value}/{n.period}/{step}/{n.to}",
        type_=NOTIFICATION_TYPE,
        subject=n.to,
        time=time,
        data=n,
    )


def feedback_record(report: FeedbackReport) -> OutboxRecord:
    """The record of a unit's feedback on `huibao.feedback.issued`, keyed by the unit."""
    return _record(
        topic=topics.FEEDBACK_ISSUED,
        key=report.unit,
        event_id=f"feedback/{report.quarter}/{report.unit}",
        type_=FEEDBACK_TYPE,
        subject=report.unit,
        time=report.issued_at,
        data=report,
    )
