"""What the intake entrypoints put on their canonical log lines: bounded, never personal."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from huibao_reporting.domain.decisions import Status
from huibao_reporting.domain.events import Submission
from huibao_reporting.service_layer.intake import EventResult

_MAX_ID = 128


def outcome_fields(results: Sequence[EventResult]) -> dict[str, Any]:
    """Counts of a batch's outcomes and of its reject reasons (codes, not messages)."""
    status = Counter(r.status for r in results)
    reasons = Counter(
        str(r.errors[0].reason) for r in results if r.status is Status.REJECTED and r.errors
    )
    fields: dict[str, Any] = {
        "events": len(results),
        "accepted": status[Status.ACCEPTED],
        "duplicates": status[Status.DUPLICATE],
        "rejected": status[Status.REJECTED],
    }
    if reasons:
        fields["reject_reasons"] = dict(reasons)
    return fields


def event_fields(sub: Submission) -> dict[str, str]:
    """The CloudEvent `id` and `source` of one submission, to bind while it is processed."""
    ident, source = sub.ident()
    fields = {}
    if ident:
        fields["event_id"] = ident[:_MAX_ID]
    if source:
        fields["event_source"] = source[:_MAX_ID]
    return fields
