"""Kafka topic names and their partitioning. The key of every activity record is the org-unit id."""

from typing import Final

ACTIVITY_SUBMITTED: Final = "huibao.activity.submitted"
"""Integrators publish raw CloudEvents here; reporting validates them."""
ACTIVITY_ACCEPTED: Final = "huibao.activity.accepted"
"""Validated, durable activity events; the rollup consumes them."""
ACTIVITY_REJECTED: Final = "huibao.activity.rejected"
"""Original bytes of every refused submission, with the reason in headers."""
ORGUNIT_CHANGES: Final = "huibao.orgunit.changes"
"""Every change of the org-unit registry, in order, keyed by unit id."""
CYCLE_EVENTS: Final = "huibao.cycle.events"
"""Transitions of the monthly Party Day and quarterly feedback cycles."""
NOTIFICATIONS: Final = "huibao.notifications"
"""Reminders, escalations and dispatch summaries addressed to org units."""
FEEDBACK_ISSUED: Final = "huibao.feedback.issued"
"""The quarterly feedback report of every unit."""

PARTITIONS: Final[dict[str, int]] = {
    ACTIVITY_SUBMITTED: 6,
    ACTIVITY_ACCEPTED: 6,
    ACTIVITY_REJECTED: 3,
    ORGUNIT_CHANGES: 1,
    CYCLE_EVENTS: 1,
    NOTIFICATIONS: 3,
    FEEDBACK_ISSUED: 3,
}
"""Partitions per topic; `orgunit.changes` has one so the tree stays in order."""

ALL_TOPICS: Final = tuple(PARTITIONS)
