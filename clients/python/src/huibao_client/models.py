"""The answers of Huibao's HTTP APIs, typed.

What the contracts define is reused from `huibao_contracts` (`FieldError` and `Reason` for
refused events, `CycleTransition`, `FeedbackReport`); the shapes that only the HTTP APIs
have (a batch's results, a summary, a page of children) are defined here. The models
ignore fields they do not know, so a newer server that adds a field does not break an
older client.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from huibao_contracts.cycles import CycleTransition
from huibao_contracts.rejects import FieldError, Reason

Value = int | float | None
"""A metric's value: a count, a ratio, or null (a ratio whose denominator is 0)."""

ItemT = TypeVar("ItemT")


class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class EventStatus(StrEnum):
    """What reporting did with one event."""

    ACCEPTED = "accepted"
    """Stored (or, in a dry run, would be)."""
    DUPLICATE = "duplicate"
    """`source` + `id` was seen before: nothing changed."""
    REJECTED = "rejected"
    """Refused; `errors` say which field and why."""


class EventResult(_Answer):
    """The answer for one event of a submission, at its position `index`."""

    index: int = Field(description="Position of the event in the submission (0 for one event).")
    id: str | None = Field(description="The event's `id`, when it had one.")
    source: str | None = Field(description="The event's `source`, when it had one.")
    status: EventStatus
    errors: tuple[FieldError, ...] = Field(
        default=(), description="Why it was refused (empty unless rejected)."
    )

    @property
    def ok(self) -> bool:
        """True when accepted or a duplicate: sending it again is never needed."""
        return self.status is not EventStatus.REJECTED

    @property
    def reasons(self) -> tuple[Reason, ...]:
        """The reason codes of `errors`, in order."""
        return tuple(e.reason for e in self.errors)


class BatchResult(_Answer):
    """The answer for a submission: one result per event, in order, and the counts."""

    results: tuple[EventResult, ...]
    accepted: int = Field(ge=0)
    duplicates: int = Field(ge=0)
    rejected: int = Field(ge=0)

    @property
    def refused(self) -> tuple[EventResult, ...]:
        """The rejected results, in order."""
        return tuple(r for r in self.results if r.status is EventStatus.REJECTED)


class ImportResult(_Answer):
    """The answer of an org-unit import: how many units it created, changed or left alone."""

    created: int = Field(ge=0)
    updated: int = Field(ge=0)
    unchanged: int = Field(ge=0)


class NodeBrief(_Answer):
    """An org unit as the rollup names it in its answers."""

    id: str
    name: str
    level: str
    parent: str | None = None


class Summary(_Answer):
    """Every public metric of a node in a period (`GET /v1/nodes/{id}/summary`)."""

    node: NodeBrief
    period: str = Field(examples=["2026-Q2"])
    metrics: dict[str, Value] = Field(description="By catalogue name.")


class Page(_Answer, Generic[ItemT]):
    """One page of a list: `items` from `offset`, at most `limit`, of `total`."""

    total: int = Field(ge=0)
    offset: int = Field(ge=0)
    limit: int = Field(ge=0)
    items: tuple[ItemT, ...]


class RankedChild(_Answer):
    """A child of a node with its value of the ranking metric and every public metric."""

    id: str
    name: str
    level: str
    value: Value
    rank: int = Field(ge=1, description="Competition rank, 1 = best; ties share a rank.")
    metrics: dict[str, Value]


class Children(Page[RankedChild]):
    """The children of a node ranked by a metric (`GET /v1/nodes/{id}/children`)."""

    node: NodeBrief
    period: str
    metric: str


class CompletenessUnit(_Answer):
    """A branch in a completeness answer: missing, late or unexpected."""

    id: str
    name: str
    parent: str | None
    path: tuple[str, ...] = Field(description="Ancestors root → unit.")
    reported_at: dt.datetime | None = Field(
        default=None, description="When its report came (late and unexpected units)."
    )


class Completeness(_Answer):
    """Who held a month's Party Day under a node (`GET /v1/nodes/{id}/completeness`)."""

    node: NodeBrief
    cycle: str
    period: str
    deadline: dt.datetime
    expected: int = Field(ge=0)
    held: int = Field(ge=0)
    on_time: int = Field(ge=0)
    late: int = Field(ge=0)
    missing: int = Field(ge=0)
    unexpected: int = Field(ge=0)
    missing_units: Page[CompletenessUnit]
    late_units: Page[CompletenessUnit]
    unexpected_units: Page[CompletenessUnit]


class SeriesPoint(_Answer):
    """One month of a series."""

    period: str
    value: Value


class Series(_Answer):
    """A metric of a node month by month (`GET /v1/nodes/{id}/series`)."""

    node: NodeBrief
    metric: str
    points: tuple[SeriesPoint, ...]


class CycleInfo(_Answer):
    """One scheduled cycle, its state and its next step (`GET /v1/cycles`)."""

    kind: str
    period: str
    state: str
    last_step: str | None = None
    updated_at: dt.datetime | None = None
    next_step: str | None = None
    next_due_at: dt.datetime | None = None


class Cycles(_Answer):
    """Every cycle scheduled so far and the scheduler's clock."""

    now: dt.datetime
    items: tuple[CycleInfo, ...]


class ClockAnswer(_Answer):
    """The scheduler's clock after a move, and the steps the move ran (in order)."""

    now: dt.datetime
    transitions: tuple[CycleTransition, ...]
    pending: int = Field(ge=0, description="Steps still due (a failure stopped the run).")
    error: str | None = None


class Whoami(_Answer):
    """The unit, label and scopes of the calling token."""

    unit: str | None
    label: str | None = None
    scopes: tuple[str, ...]
