"""Decisions that depend on what was stored before: duplicates, revisions, conflicts.

`IntakeState` holds what the store knows about the messages and activities of one batch;
`decide` rules on one event and, when it is accepted, updates the state so that the next
events of the same batch see it (a batch behaves like the same events sent one by one).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from huibao_contracts.activities import PARTY_DAY_TYPE
from huibao_contracts.rejects import FieldError, Reason
from huibao_reporting.domain.events import ParsedEvent


class Status(StrEnum):
    """The outcome of one submitted event."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class StoredActivity:
    """The accepted revision of an activity."""

    activity_id: str
    type: str
    unit: str
    revision: int
    month: dt.date
    retracted: bool


@dataclass(slots=True)
class IntakeState:
    """What the store knows about one batch: seen messages, activities, Party Day slots."""

    seen: set[tuple[str, str]] = field(default_factory=set)
    activities: dict[str, StoredActivity] = field(default_factory=dict)
    party_days: dict[tuple[str, dt.date], str] = field(default_factory=dict)
    """(branch, month) → activity id of its Party Day report (not retracted)."""


def _conflict(message: str, name: str = "data.activity_id") -> list[FieldError]:
    return [FieldError(field=name, reason=Reason.CONFLICTING_ACTIVITY, message=message)]


def decide(event: ParsedEvent, state: IntakeState) -> tuple[Status, list[FieldError]]:
    """Rule on one valid event against the state; apply it to the state when accepted."""
    if event.key in state.seen:
        return Status.DUPLICATE, []
    p = event.payload
    stored = state.activities.get(p.activity_id)
    if stored is not None:
        if stored.type != event.envelope.type or stored.unit != event.subject:
            return Status.REJECTED, _conflict(
                f"activity {p.activity_id} was reported as {stored.type} of {stored.unit}; "
                "an activity id cannot change its type or unit"
            )
        if p.revision <= stored.revision:
            return Status.REJECTED, [
                FieldError(
                    field="data.revision",
                    reason=Reason.STALE_REVISION,
                    message=f"revision {p.revision} of {p.activity_id} is not newer than the "
                    f"accepted revision {stored.revision}",
                )
            ]
    is_party_day = event.envelope.type == PARTY_DAY_TYPE
    if is_party_day and not p.retracted:
        holder = state.party_days.get((event.subject, event.month))
        if holder is not None and holder != p.activity_id:
            return Status.REJECTED, _conflict(
                f"{event.subject} already reported its Party Day of {event.month:%Y-%m} as "
                f"activity {holder}; send a correction with activity_id {holder} and a higher "
                "revision instead"
            )
    _apply(event, stored, state, is_party_day=is_party_day)
    return Status.ACCEPTED, []


def _apply(
    event: ParsedEvent, stored: StoredActivity | None, state: IntakeState, *, is_party_day: bool
) -> None:
    p = event.payload
    state.seen.add(event.key)
    state.activities[p.activity_id] = StoredActivity(
        p.activity_id, event.envelope.type, event.subject, p.revision, event.month, p.retracted
    )
    if not is_party_day:
        return
    if stored is not None and state.party_days.get((stored.unit, stored.month)) == p.activity_id:
        del state.party_days[(stored.unit, stored.month)]
    if not p.retracted:
        state.party_days[(event.subject, event.month)] = p.activity_id
