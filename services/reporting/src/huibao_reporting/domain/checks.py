"""Checks of a parsed event against the registry, the clock and the caller's scope."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from huibao_contracts.activities import ALLOWED_LEVELS
from huibao_contracts.rejects import FieldError, Reason
from huibao_reporting.domain.events import ParsedEvent
from huibao_reporting.domain.registry import RegistryView


@dataclass(frozen=True, slots=True)
class IntakeRules:
    """What an event is checked against besides the registry."""

    timezone: ZoneInfo
    future_skew: dt.timedelta = dt.timedelta(minutes=10)


def check_event(
    event: ParsedEvent,
    view: RegistryView,
    now: dt.datetime,
    rules: IntakeRules,
    scope: str | None = None,
) -> list[FieldError]:
    """Registry, level, date and scope checks; [] when the event may be stored.

    `scope` is the unit the caller's token is bound to (None: the whole tree). The subject
    must lie inside it on the activity's date or today.
    """
    subject, day = event.subject, event.payload.date
    record = view.get(subject)
    if record is None:
        return [
            FieldError(
                field="subject", reason=Reason.UNKNOWN_UNIT, message=f"unknown org unit {subject}"
            )
        ]
    if scope is not None and not (view.within(subject, scope, day) or view.within(subject, scope)):
        return [
            FieldError(
                field="subject",
                reason=Reason.OUT_OF_SCOPE,
                message=f"{subject} lies outside the subtree of {scope}",
            )
        ]
    errors: list[FieldError] = []
    unit = record.unit
    if not unit.active_on(day):
        when = (
            f"opened on {unit.opened}"
            if unit.opened and day < unit.opened
            else f"closed on {unit.closed}"
        )
        errors.append(
            FieldError(
                field="subject",
                reason=Reason.UNIT_INACTIVE,
                message=f"{subject} is not active on {day}: {when}",
            )
        )
    allowed = ALLOWED_LEVELS[event.envelope.type]
    if unit.level not in allowed:
        levels = " or ".join(sorted(str(level) for level in allowed))
        errors.append(
            FieldError(
                field="subject",
                reason=Reason.WRONG_LEVEL,
                message=f"{event.envelope.type} is reported by a {levels}; "
                f"{subject} is a {unit.level}",
            )
        )
    latest = now + rules.future_skew
    if day > latest.astimezone(rules.timezone).date():
        errors.append(
            FieldError(
                field="data.date", reason=Reason.FUTURE_DATE, message=f"{day} is in the future"
            )
        )
    if event.envelope.time is not None and event.envelope.time > latest:
        errors.append(
            FieldError(
                field="time",
                reason=Reason.FUTURE_DATE,
                message=f"{event.envelope.time.isoformat()} is in the future",
            )
        )
    return errors
