"""What one activity payload adds to the metrics of the catalogue.

A retracted activity contributes nothing. A Party Day of a branch expected that month
counts as held, on time or late as decided from the first report's instant against the
calendar deadline of its month; a Party Day of a unit not expected (see
`huibao_rollup.domain.attribution.party_day_slot`) counts as `party_day.unexpected` instead.
The instant of a report is its `time`, unless that lies before the activity's own date (a
report recorded before the activity happened cannot be trusted): then it is the receipt
time, and never earlier than the start of the activity's date.

A training adds `training.person_hours`: participants × its class hours by the class-hour
rule (`huibao_contracts.class_hours.ClassHourRules`, the rollup's settings), computed in
decimal so sums stay exact.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

from huibao_contracts.activities import (
    FEEDBACK_COLLECTED_TYPE,
    FEEDBACK_RESOLVED_TYPE,
    LESSON_TYPE,
    OUTREACH_TYPE,
    PARTY_DAY_TYPE,
    POINTS_TYPE,
    SCREENING_TYPE,
    TRAINING_TYPE,
    VOLUNTEER_TYPE,
)
from huibao_contracts.calendar import CalendarRules
from huibao_contracts.class_hours import DEFAULT_CLASS_HOURS, ClassHourRules
from huibao_contracts.periods import Period
from huibao_rollup.domain.model import Contribution, Number

PARTY_DAY = PARTY_DAY_TYPE
PARTY_DAY_METRICS = (
    "party_day.held",
    "party_day.on_time",
    "party_day.late",
    "party_day.attendees",
    "party_day.members",
    "party_day.unexpected",
)


def _num(data: Mapping[str, Any], key: str) -> Number:
    value = data.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return value


def _fields(**metrics: str) -> Callable[[Mapping[str, Any]], Contribution]:
    """A rule adding payload fields: `metric=field`, or `metric="=1"` for a count of one."""

    def rule(data: Mapping[str, Any]) -> Contribution:
        return {m: 1 if f == "=1" else _num(data, f) for m, f in metrics.items()}

    return rule


RULES: dict[str, Callable[[Mapping[str, Any]], Contribution]] = {
    LESSON_TYPE: _fields(
        **{
            "lesson.delivered": "=1",
            "lesson.audience": "audience",
            "lesson.minutes": "duration_minutes",
        }
    ),
    TRAINING_TYPE: _fields(
        **{
            "training.sessions": "=1",
            "training.participants": "participants",
            "training.hours": "hours",
        }
    ),
    OUTREACH_TYPE: _fields(
        **{
            "outreach.sessions": "=1",
            "outreach.audience": "audience",
            "outreach.expected": "expected",
            "outreach.present": "present",
            "outreach.responses": "responses",
            "outreach.satisfied": "satisfied",
            "outreach.good": "good",
        }
    ),
    VOLUNTEER_TYPE: _fields(
        **{
            "volunteer.activities": "=1",
            "volunteer.volunteers": "volunteers",
            "volunteer.served": "served",
            "volunteer.hours": "hours",
        }
    ),
    FEEDBACK_COLLECTED_TYPE: _fields(**{"feedback.collected": "items"}),
    FEEDBACK_RESOLVED_TYPE: _fields(**{"feedback.resolved": "items"}),
    SCREENING_TYPE: _fields(**{"screening.held": "=1", "screening.audience": "audience"}),
    POINTS_TYPE: _fields(**{"points.awarded": "points"}),
}
"""Every activity type other than the Party Day, with the metrics it adds to."""

PERSON_HOURS = "training.person_hours"

METRICS: tuple[str, ...] = tuple(
    dict.fromkeys(
        [*PARTY_DAY_METRICS, *(m for rule in RULES.values() for m in rule({})), PERSON_HOURS]
    )
)
"""Every metric a contribution may name."""


def _exact(value: Number) -> Decimal:
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


def person_hours(data: Mapping[str, Any], rules: ClassHourRules) -> Number:
    """Participants × class hours of a training payload (an int when integral)."""
    duration = data.get("duration") or "hours"
    days = data.get("days", 1)
    days = days if isinstance(days, int) and not isinstance(days, bool) else 1
    hours = rules.class_hours(duration, _exact(_num(data, "hours")), days)
    value = _exact(_num(data, "participants")) * hours
    return int(value) if value == value.to_integral_value() else float(value)


def is_known_type(event_type: str) -> bool:
    """True for the activity types the rollup counts."""
    return event_type == PARTY_DAY or event_type in RULES


def reported_instant(
    rules: CalendarRules, day: dt.date, time: dt.datetime | None, received: dt.datetime
) -> dt.datetime:
    """When a report of an activity dated `day` counts as recorded: its `time`, unless
    absent or earlier than `day` in local time (then the receipt time), and never earlier
    than the start of `day` (a report cannot precede what it reports)."""
    return trusted_instant(start_of(rules, day), time, received)


def trusted_instant(
    start: dt.datetime, time: dt.datetime | None, received: dt.datetime
) -> dt.datetime:
    """`reported_instant` with the start of the activity's date worked out."""
    instant = time if time is not None and time >= start else received
    return instant if instant >= start else start


def start_of(rules: CalendarRules, day: dt.date) -> dt.datetime:
    """The first instant of `day`, local time."""
    return dt.datetime.combine(day, dt.time(0, 0), tzinfo=rules.tz)


def deadline_of(rules: CalendarRules, day: dt.date) -> dt.datetime:
    """The Party Day deadline of the month of `day`."""
    return _deadline(rules, day.year, day.month)


def on_time(
    rules: CalendarRules,
    event_type: str,
    day: dt.date,
    first_reported_at: dt.datetime,
) -> bool | None:
    """For a Party Day: whether its first report beat the deadline of its month; else None."""
    if event_type != PARTY_DAY:
        return None
    return first_reported_at <= _deadline(rules, day.year, day.month)


@lru_cache(maxsize=1024)
def _deadline(rules: CalendarRules, year: int, month: int) -> dt.datetime:
    return rules.deadline(Period.month_of(dt.date(year, month, 1)))


def contribution(
    event_type: str,
    data: Mapping[str, Any],
    *,
    retracted: bool,
    on_time: bool | None,
    expected: bool = True,
    class_hours: ClassHourRules = DEFAULT_CLASS_HOURS,
) -> Contribution:
    """The metric amounts one revision of an activity adds; empty when retracted.

    `expected` (Party Days only): whether the unit was expected to hold it that month; a
    report of a unit not expected adds `party_day.unexpected`, not held, on time or late.
    `class_hours` (trainings only): the rule turning its length into class hours."""
    if retracted:
        return {}
    if event_type == PARTY_DAY:
        amounts: Contribution = {
            "party_day.held": 1 if expected else 0,
            "party_day.on_time": 1 if expected and on_time else 0,
            "party_day.late": 1 if expected and not on_time else 0,
            "party_day.unexpected": 0 if expected else 1,
            "party_day.attendees": _num(data, "attendees"),
            "party_day.members": _num(data, "members"),
        }
    else:
        rule = RULES.get(event_type)
        amounts = rule(data) if rule else {}
        if event_type == TRAINING_TYPE:
            amounts[PERSON_HOURS] = person_hours(data, class_hours)
    return {m: v for m, v in amounts.items() if v}


_COUNTERS = ("party_day.held", "party_day.on_time", "party_day.late", "party_day.unexpected")


def recounted(
    event_type: str, amounts: Contribution, *, on_time: bool | None, expected: bool
) -> Contribution:
    """`amounts` of a stored fact with its Party Day counters set for `expected` (the tree
    changed whether its unit was expected): other types and retracted facts unchanged."""
    if event_type != PARTY_DAY or not amounts:
        return amounts
    out = {m: v for m, v in amounts.items() if m not in _COUNTERS}
    counters = contribution(PARTY_DAY, {}, retracted=False, on_time=on_time, expected=expected)
    out.update((m, v) for m, v in counters.items() if m in _COUNTERS)
    return out
