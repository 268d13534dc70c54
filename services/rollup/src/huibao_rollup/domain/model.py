"""The values the rollup works with: an accepted activity event and a stored fact."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

Number = int | float
Contribution = dict[str, Number]
"""What one fact adds to every node on its path: metric name → amount."""


@dataclass(frozen=True, slots=True)
class ActivityEvent:
    """An accepted activity event as read from `huibao.activity.accepted`.

    `shard` is the Kafka partition it came from: the aggregate rows it changes carry it,
    so replicas owning different partitions never write the same row.
    """

    source: str
    id: str
    type: str
    unit: str
    time: dt.datetime | None
    received: dt.datetime
    data: dict[str, Any]
    shard: int = 0

    @property
    def activity_id(self) -> str:
        """Stable id of the activity across corrections."""
        return str(self.data["activity_id"])

    @property
    def revision(self) -> int:
        """Revision of the activity; the highest wins."""
        return int(self.data.get("revision", 1))

    @property
    def date(self) -> dt.date:
        """Local date of the activity."""
        return dt.date.fromisoformat(str(self.data["date"]))

    @property
    def retracted(self) -> bool:
        """True when this revision withdraws the activity."""
        return bool(self.data.get("retracted", False))

    @property
    def reported_at(self) -> dt.datetime:
        """When the source recorded it (`time`), else when reporting received it."""
        return self.time or self.received

    @property
    def message_key(self) -> str:
        """`source` + `id`: what identifies a message."""
        return f"{self.source} {self.id}"


@dataclass(frozen=True, slots=True)
class Fact:
    """One activity as the rollup counts it: the revision applied and its contribution,
    attributed through `path` (root → unit) for the periods of `date`."""

    activity_id: str
    unit: str
    type: str
    date: dt.date
    revision: int
    message_key: str
    first_reported_at: dt.datetime
    on_time: bool | None
    retracted: bool
    contribution: Contribution = field(default_factory=dict)
    path: tuple[str, ...] = ()
