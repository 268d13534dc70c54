"""The query API's answers as OpenAPI models: what `service_layer.queries` builds and the
routes (and the fast path) send as pre-serialised bytes, field by field.

The routes keep sending their bytes; these models are declared with `responses=` and the
conformance test (tests/service/test_openapi_conformance.py) checks the real bodies
against them.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

MetricValue = int | float | None
"""A sum (a number), a ratio (a number, null when its denominator is 0) or a tree count."""

_METRICS_EXAMPLE = {"party_day.held": 12, "lesson.delivered": 30, "screening.attendance": 0.82}


class Brief(BaseModel):
    """A node as it stands today."""

    id: str = Field(description="The org unit.", examples=["qingyuan"])
    name: str = Field(description="Its display name.", examples=["清源县"])
    level: str = Field(description="Its level.", examples=["county"])
    parent: str | None = Field(description="Its parent; null for a root.", examples=["city"])


class NodeAnswer(Brief):
    """`GET /v1/nodes/{id}`: a node with its path, members, dates and current children."""

    path: list[str] = Field(description="From the root down to the node, inclusive.")
    members: int = Field(ge=0, description="Party members (branches; 0 above them).")
    opened: dt.date | None = Field(description="When the unit opened, when known.")
    closed: dt.date | None = Field(description="When it closed; null while open.")
    children: list[str] = Field(description="Its children today.")


class RootItem(BaseModel):
    """A root the token may see."""

    id: str = Field(description="The org unit.", examples=["city"])
    name: str = Field(description="Its display name.", examples=["示范市"])
    level: str = Field(description="Its level.", examples=["city"])


class RootsAnswer(BaseModel):
    """`GET /v1/roots`: every root for the admin token, the token's own unit otherwise."""

    items: list[RootItem]


class SummaryAnswer(BaseModel):
    """`GET /v1/nodes/{id}/summary`: every public metric of a node in a period."""

    node: Brief
    period: str = Field(description="The period asked.", examples=["2026-Q2"])
    metrics: dict[str, MetricValue] = Field(
        description="Every public metric of the catalogue, in catalogue order.",
        examples=[_METRICS_EXAMPLE],
    )


class Page(BaseModel):
    """The paging fields of a list."""

    total: int = Field(ge=0, description="Items in the whole list.")
    offset: int = Field(ge=0, description="Items skipped.")
    limit: int = Field(ge=1, description="Page size used (capped by the service).")


class ChildItem(BaseModel):
    """A child and its rank by the metric asked."""

    id: str = Field(description="The child unit.", examples=["chengguan"])
    name: str = Field(description="Its display name.", examples=["城关镇"])
    level: str = Field(description="Its level.", examples=["township"])
    value: MetricValue = Field(description="Its value of the metric asked.")
    rank: int = Field(ge=1, description="Competition rank, 1 = best; ties share a rank.")
    metrics: dict[str, MetricValue] = Field(description="Every public metric of the child.")


class ChildrenAnswer(Page):
    """`GET /v1/nodes/{id}/children`: children in force at the period's end, ranked."""

    node: Brief
    period: str = Field(description="The period asked.", examples=["2026-05"])
    metric: str = Field(description="The metric ranked by.", examples=["party_day.held"])
    items: list[ChildItem]


class UnitRef(BaseModel):
    """A branch in a completeness list."""

    id: str = Field(description="The branch.", examples=["b-001"])
    name: str = Field(description="Its display name.", examples=["东街村党支部"])
    parent: str | None = Field(description="Its parent on the Party Day.")
    path: list[str] = Field(description="From the root down to the branch.")


class ReportedRef(UnitRef):
    """A branch whose report came late or was not expected."""

    reported_at: dt.datetime = Field(description="When it reported.")


class UnitPage(Page):
    """A page of branches."""

    items: list[UnitRef]


class ReportedPage(Page):
    """A page of branches that reported."""

    items: list[ReportedRef]


class CompletenessAnswer(BaseModel):
    """`GET /v1/nodes/{id}/completeness`: who held the month's Party Day, and who not."""

    node: Brief
    cycle: Literal["party_day"] = Field(description="The cycle (only `party_day`).")
    period: str = Field(description="The month.", examples=["2026-05"])
    deadline: dt.datetime = Field(description="The month's reporting deadline.")
    expected: int = Field(ge=0, description="Active branches expected to hold it.")
    held: int = Field(ge=0, description="Expected branches that reported it.")
    on_time: int = Field(ge=0, description="Reported no later than the deadline.")
    late: int = Field(ge=0, description="Reported after the deadline.")
    missing: int = Field(ge=0, description="Expected branches without a report.")
    unexpected: int = Field(ge=0, description="Reports from branches not expected.")
    missing_units: UnitPage
    late_units: ReportedPage
    unexpected_units: ReportedPage


class SeriesPoint(BaseModel):
    """One month of a series."""

    period: str = Field(description="The month.", examples=["2026-05"])
    value: MetricValue = Field(description="The metric in that month.")


class SeriesAnswer(BaseModel):
    """`GET /v1/nodes/{id}/series`: a metric month by month."""

    node: Brief
    metric: str = Field(description="The metric.", examples=["lesson.delivered"])
    points: list[SeriesPoint]
