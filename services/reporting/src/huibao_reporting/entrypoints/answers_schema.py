"""The reporting service's HTTP answers as OpenAPI models, field by field.

The routes keep building their answers as they do; these models are what the OpenAPI
document declares, and the conformance test (tests/service/test_openapi_conformance.py)
checks the real bodies against them. What integrators also meet on Kafka (`OrgUnit`,
`OrgUnitChange`, the reject `FieldError`) comes from the contracts.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

from huibao_contracts.orgunits import OrgUnit, OrgUnitChange
from huibao_contracts.rejects import FieldError


class EventResult(BaseModel):
    """The outcome of one submitted event, in the order sent."""

    index: int = Field(ge=0, description="Position of the event in the request (0 for one).")
    id: str | None = Field(description="The event's `id`, when it has a readable one.")
    source: str | None = Field(description="The event's `source`, when readable.")
    status: Literal["accepted", "duplicate", "rejected"] = Field(
        description="`accepted` (stored; in a dry run: would be), `duplicate` (the same "
        "`source` and `id` was accepted before, nothing changes) or `rejected`."
    )
    errors: list[FieldError] = Field(description="Why a rejected event was refused.")


class EventsAnswer(BaseModel):
    """`POST /v1/events`: one result per event and the counts."""

    results: list[EventResult]
    accepted: int = Field(ge=0, description="Events accepted.")
    duplicates: int = Field(ge=0, description="Events already accepted before.")
    rejected: int = Field(ge=0, description="Events refused.")
    errors: list[FieldError] | None = Field(
        default=None, description="A single refused event: its errors (also in `results`)."
    )


class ImportRow(OrgUnit):
    """One unit of `PUT /v1/orgunits` (a JSON array element, or a CSV row with these
    columns)."""

    effective: dt.date | None = Field(
        default=None,
        description="First day the row holds; without it, the day of the import.",
    )


class ImportAnswer(BaseModel):
    """`PUT /v1/orgunits`: what the import did, unit by unit."""

    created: int = Field(ge=0, description="Units new to the registry.")
    updated: int = Field(ge=0, description="Units whose fields or parent changed.")
    unchanged: int = Field(ge=0, description="Units sent as they already were.")


class Placement(BaseModel):
    """Where a unit stood from a date on."""

    valid_from: dt.date | None = Field(description="First day; null for since always.")
    parent: str | None = Field(description="The parent; null for a root.")


class Label(BaseModel):
    """A unit's name and members from a date on."""

    valid_from: dt.date | None = Field(description="First day; null for since always.")
    name: str = Field(description="Display name.")
    members: int = Field(ge=0, description="Party members (branches).")


class OrgUnitAnswer(OrgUnit):
    """`GET /v1/orgunits/{id}`: the unit today, its path, children and dated history."""

    path: list[str] = Field(description="From the root down to the unit, inclusive.")
    children: list[str] = Field(description="Its children today.")
    placements: list[Placement] = Field(description="Every parent it has had, oldest first.")
    labels: list[Label] = Field(description="Every name and member count, oldest first.")


class ChangesAnswer(BaseModel):
    """A dated change of the registry (move, merge, close): the changes it published."""

    changes: list[OrgUnitChange]


class TokenAnswer(BaseModel):
    """`POST /v1/tokens`: the token made (the clear token is shown only here)."""

    token: str = Field(description="The bearer token; store it, it is not shown again.")
    token_hash: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="Its SHA-256, to revoke it later."
    )
    unit: str = Field(description="The unit whose subtree it may see and act on.")
    label: str = Field(description="Who holds it.")
    scopes: list[Literal["report", "read", "approve", "admin"]] = Field(
        description="What it may do."
    )
