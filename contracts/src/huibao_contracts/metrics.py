"""The metric catalogue: names every API and dashboard uses; part of the contract.

`sum` metrics are added up from facts; `ratio` metrics divide two sums (or a sum by a
`tree` metric) of the same node and period at query time, never averaging the ratios of
its children; a ratio whose denominator is 0 has no value (JSON null, an empty CSV cell).
`tree` metrics come from the org-unit tree in force in the period.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class MetricKind(StrEnum):
    """How a metric is computed."""

    SUM = "sum"
    RATIO = "ratio"
    TREE = "tree"


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric of the catalogue."""

    name: str
    kind: MetricKind
    unit: str
    description: str
    numerator: str | None = None
    denominator: str | None = None
    internal: bool = False


def _sum(name: str, unit: str, description: str, *, internal: bool = False) -> Metric:
    return Metric(name, MetricKind.SUM, unit, description, internal=internal)


def _ratio(name: str, numerator: str, denominator: str, description: str) -> Metric:
    return Metric(name, MetricKind.RATIO, "ratio", description, numerator, denominator)


CATALOGUE: Final[tuple[Metric, ...]] = (
    Metric(
        "party_day.expected",
        MetricKind.TREE,
        "branches",
        "Branches expected to hold the Party Day: active on the month's Party Day (the 26th),"
        " summed over the months of the period whose Party Day has come.",
    ),
    _sum(
        "party_day.held",
        "branches",
        "Expected branches (see party_day.expected) that reported the month's Party Day.",
    ),
    _sum("party_day.on_time", "branches", "Held Party Days reported by the deadline."),
    _sum("party_day.late", "branches", "Held Party Days reported after the deadline."),
    _sum("party_day.attendees", "people", "Members attending Party Days."),
    _sum(
        "party_day.members",
        "people",
        "Members of the branches that held a Party Day.",
        internal=True,
    ),
    _ratio(
        "party_day.reporting_rate",
        "party_day.held",
        "party_day.expected",
        "Held over expected Party Days (reporting rate).",
    ),
    _ratio(
        "party_day.on_time_rate",
        "party_day.on_time",
        "party_day.held",
        "Held Party Days reported by the deadline over held Party Days (not over expected:"
        " a Party Day not reported is counted by reporting_rate, not here).",
    ),
    _ratio(
        "party_day.attendance_rate",
        "party_day.attendees",
        "party_day.members",
        "Attendees over members of the branches that held it.",
    ),
    _sum("lesson.delivered", "lessons", "Party lessons delivered."),
    _sum("lesson.audience", "people", "Audience of party lessons (person-times)."),
    _sum("lesson.minutes", "minutes", "Minutes of party lessons (sum of duration_minutes)."),
    _sum("training.sessions", "sessions", "Training sessions held."),
    _sum("training.participants", "people", "Training participants (person-times)."),
    _sum("training.hours", "hours", "Training hours held.", internal=True),
    _sum("outreach.sessions", "sessions", "Outreach lectures held."),
    _sum("outreach.audience", "people", "People reached by outreach lectures."),
    _sum("outreach.expected", "people", "People expected at outreach lectures.", internal=True),
    _sum("outreach.present", "people", "People present at outreach lectures.", internal=True),
    _sum("outreach.responses", "responses", "Survey responses.", internal=True),
    _sum("outreach.satisfied", "responses", "Satisfied survey responses.", internal=True),
    _ratio(
        "outreach.attendance_rate",
        "outreach.present",
        "outreach.expected",
        "Present over expected at outreach lectures.",
    ),
    _ratio(
        "outreach.satisfaction_rate",
        "outreach.satisfied",
        "outreach.responses",
        "Satisfied over survey responses.",
    ),
    _ratio(
        "outreach.good_rate",
        "outreach.good",
        "outreach.responses",
        "Responses rating the lecture good over survey responses.",
    ),
    _sum("volunteer.activities", "activities", "Volunteer activities.", internal=True),
    _sum("volunteer.volunteers", "people", "Volunteers (person-times)."),
    _sum("volunteer.served", "people", "People served by volunteers."),
    _sum("feedback.collected", "items", "Feedback items collected."),
    _sum("feedback.resolved", "items", "Feedback items resolved."),
    _ratio(
        "feedback.resolution_rate",
        "feedback.resolved",
        "feedback.collected",
        "Resolved over collected items.",
    ),
    _sum("screening.held", "screenings", "Film screenings held."),
    _sum("screening.audience", "people", "Audience of screenings (person-times)."),
    _sum("points.awarded", "points", "Member points awarded, net of deductions."),
    # a sum added after the others: sums are stored by position in catalogue order
    _sum(
        "party_day.unexpected",
        "branches",
        "Party Days reported by units not expected that month (not an active branch on its"
        " Party Day): counted here instead of in held, on time and late.",
    ),
    # sums added with issue 15.3, after the others (stored rows of the older, shorter
    # length read as 0 for them; see huibao_rollup.domain.aggregation.SLOTS)
    _sum(
        "training.person_hours",
        "person-hours",
        "Participants × class hours of each training, by the class-hour rule"
        " (huibao_contracts.class_hours: 1 per hour, 4 per half day, 8 per full day).",
    ),
    _sum("volunteer.hours", "hours", "Volunteer hours (sum of the activities' hours)."),
    _sum("outreach.good", "responses", "Survey responses rating it good.", internal=True),
    Metric(
        "orgunits.branches",
        MetricKind.TREE,
        "branches",
        "Active branches at the end of the period.",
    ),
    Metric(
        "members.total",
        MetricKind.TREE,
        "people",
        "Party members of the active branches at the end of the period.",
    ),
)

BY_NAME: Final[dict[str, Metric]] = {m.name: m for m in CATALOGUE}
PUBLIC: Final[tuple[str, ...]] = tuple(m.name for m in CATALOGUE if not m.internal)
SUMS: Final[tuple[str, ...]] = tuple(m.name for m in CATALOGUE if m.kind is MetricKind.SUM)
