"""Org units: the tree of city → county → township → branch, and the changes to it."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from huibao_contracts.storable import BIGINT_MAX, StorableDate, Text

ORG_UNIT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

OrgUnitId = Annotated[
    str,
    Field(
        pattern=ORG_UNIT_ID_PATTERN,
        description="Org-unit id: a letter or digit, then up to 63 of [A-Za-z0-9._-].",
        examples=["br-0001", "cn-qingyuan.tw-03"],
    ),
]


class Level(StrEnum):
    """Levels of the default tree, from the root down."""

    CITY = "city"
    COUNTY = "county"
    TOWNSHIP = "township"
    BRANCH = "branch"

    @property
    def rank(self) -> int:
        """0 for the city, 3 for a branch: a child's rank is always greater than its parent's."""
        return LEVEL_ORDER.index(self)


LEVEL_ORDER: tuple[Level, ...] = (Level.CITY, Level.COUNTY, Level.TOWNSHIP, Level.BRANCH)


class OrgUnit(BaseModel):
    """One unit of the organisation tree as integrators import it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: OrgUnitId
    name: Text = Field(
        min_length=1,
        max_length=200,
        description="Display name.",
        examples=["清源县城关镇第一村党支部"],
    )
    level: Level = Field(description="Level in the tree.", examples=["branch"])
    parent: OrgUnitId | None = Field(
        default=None, description="Parent unit id; only the root has none.", examples=["tw-0003"]
    )
    members: int = Field(
        default=0, ge=0, le=1_000_000, description="Party members (branches).", examples=[31]
    )
    opened: StorableDate | None = Field(
        default=None, description="First day active; absent means active since always."
    )
    closed: StorableDate | None = Field(
        default=None, description="First day no longer active; absent means still active."
    )

    @model_validator(mode="after")
    def _check(self) -> OrgUnit:
        if self.level is not Level.CITY and self.parent is None:
            raise ValueError("parent is required for every level below city")
        if self.parent == self.id:
            raise ValueError("a unit cannot be its own parent")
        if self.opened and self.closed and self.closed <= self.opened:
            raise ValueError("closed must be after opened")
        return self

    def active_on(self, day: dt.date) -> bool:
        """True when the unit is open on `day`."""
        return (self.opened is None or self.opened <= day) and (
            self.closed is None or day < self.closed
        )


class OrgUnitChange(BaseModel):
    """A change of the registry, published on `huibao.orgunit.changes`.

    `unit` is the unit's full state from `effective` on; `path` is its ancestor ids from
    the root down to the unit itself, in force from `effective` on.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int = Field(
        ge=1, le=BIGINT_MAX, description="Registry sequence number, increasing with every change."
    )
    kind: Literal["upsert", "move", "merge", "close"] = Field(description="What happened.")
    effective: StorableDate | None = Field(
        description="Date from which the change holds; absent means since always."
    )
    unit: OrgUnit
    path: tuple[OrgUnitId, ...] = Field(description="Ancestors root → unit, unit last.")
    merged_into: OrgUnitId | None = Field(
        default=None, description="For a merge: the unit that takes over this unit's children."
    )
