"""The fault runs' stream of submitted events and the aggregates it must produce.

Pure and deterministic (seeded): `Stream` makes CloudEvents as an integrator sends them,
with exact duplicates (same `source` + `id`, same bytes), corrections (same activity, higher
revision, other numbers) and retractions, over the twelve months of 2025. `Expected` folds
what was sent into the aggregates a user must read from the rollup API. Written from the
contracts' rules (DESIGN.md §4), deliberately without the rollup's own domain code.
"""

from __future__ import annotations

import calendar
import datetime as dt
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

YEAR = 2025
PD = "huibao.party_day.held.v1"
LESSON = "huibao.lesson.delivered.v1"
TRAINING = "huibao.training.held.v1"
VOLUNTEER = "huibao.volunteer.served.v1"
FEEDBACK = "huibao.feedback.collected.v1"
SOURCE = "/fault/gateway"

CHECKED = (
    "party_day.held",
    "party_day.on_time",
    "party_day.late",
    "party_day.attendees",
    "lesson.delivered",
    "lesson.audience",
    "training.sessions",
    "training.participants",
    "volunteer.volunteers",
    "volunteer.served",
    "feedback.collected",
)
"""The summary metrics compared node by node (the additive ones the stream touches)."""


def periods_of(day: dt.date) -> tuple[str, str, str]:
    """Month, quarter and year of a date, as the API names them."""
    return f"{day:%Y-%m}", f"{day.year}-Q{(day.month - 1) // 3 + 1}", str(day.year)


def deadline(month: int) -> dt.datetime:
    """End of the 29th (of the last day in a shorter month), Beijing time: reports
    recorded by then are on time."""
    last = calendar.monthrange(YEAR, month)[1]
    beijing = dt.timezone(dt.timedelta(hours=8))
    return dt.datetime(YEAR, month, min(29, last), 23, 59, 59, 999999, tzinfo=beijing)


@dataclass
class Activity:
    """What the stream last said about one activity."""

    type: str
    unit: str
    data: dict[str, Any]
    first_time: dt.datetime
    revision: int = 1
    retracted: bool = False


@dataclass
class Counts:
    """What the stream holds, by kind of message."""

    new: int = 0
    duplicates: int = 0
    corrections: int = 0
    retractions: int = 0

    @property
    def total(self) -> int:
        return self.new + self.duplicates + self.corrections + self.retractions


@dataclass
class Stream:
    """Seeded generator of submitted events over the branches and townships of a tree."""

    branches: dict[str, int]
    """Branch id → its members."""
    townships: list[str]
    seed: int = 2025
    duplicate_share: float = 0.10
    correction_share: float = 0.06
    retraction_share: float = 0.02
    activities: dict[str, Activity] = field(default_factory=dict)
    counts: Counts = field(default_factory=Counts)
    _sent: list[dict[str, Any]] = field(default_factory=list)
    _live: list[str] = field(default_factory=list)
    _free_slots: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._free_slots = [(b, m) for b in self.branches for m in range(1, 13)]
        self.rng.shuffle(self._free_slots)
        self._branch_ids = list(self.branches)

    def take(self, n: int) -> list[dict[str, Any]]:
        """The next `n` CloudEvents of the stream."""
        return [self._next() for _ in range(n)]

    def _next(self) -> dict[str, Any]:
        roll = self.rng.random()
        if roll < self.duplicate_share and self._sent:
            self.counts.duplicates += 1
            return self.rng.choice(self._sent)
        roll -= self.duplicate_share
        if roll < self.correction_share + self.retraction_share and self._live:
            return self._revise(retract=roll >= self.correction_share)
        return self._new()

    def _event(self, aid: str, a: Activity, time: dt.datetime) -> dict[str, Any]:
        data = {**a.data, "activity_id": aid, "revision": a.revision}
        if a.retracted:
            data["retracted"] = True
        event = {
            "specversion": "1.0",
            "id": f"m{len(self._sent)}",
            "source": SOURCE,
            "type": a.type,
            "subject": a.unit,
            "time": time.isoformat(),
            "datacontenttype": "application/json",
            "data": data,
        }
        self._sent.append(event)
        return event

    def _new(self) -> dict[str, Any]:
        r = self.rng
        aid = f"fa{len(self.activities)}"
        kind = r.random()
        if kind < 0.3 and self._free_slots:
            branch, month = self._free_slots.pop()
            members = self.branches[branch]
            data = {"date": f"{YEAR}-{month:02d}-26", "members": members}
            data["attendees"] = r.randint(0, members)
            a = Activity(PD, branch, data, self._time(month))
        else:
            unit = r.choice(self._branch_ids) if r.random() < 0.85 else r.choice(self.townships)
            month = r.randint(1, 12)
            a = Activity(*self._payload(unit, month), self._time(month))
        self.activities[aid] = a
        self._live.append(aid)
        self.counts.new += 1
        return self._event(aid, a, a.first_time)

    def _payload(self, unit: str, month: int) -> tuple[str, str, dict[str, Any]]:
        r = self.rng
        data: dict[str, Any] = {"date": f"{YEAR}-{month:02d}-{r.randint(1, 28):02d}"}
        kind = r.choice((LESSON, TRAINING, VOLUNTEER, FEEDBACK))
        if kind == LESSON:
            data |= {
                "speaker_role": "branch_secretary",
                "topic": "党课",
                "audience": r.randint(5, 80),
            }
        elif kind == TRAINING:
            data |= {"target_group": "ordinary", "participants": r.randint(5, 60), "hours": 2}
        elif kind == VOLUNTEER:
            data |= {"volunteers": r.randint(1, 20), "served": r.randint(1, 300)}
        else:
            data |= {"items": r.randint(1, 15)}
        return kind, unit, data

    def _time(self, month: int) -> dt.datetime:
        """On time (the 27th) for most reports, late (the next month's 5th) for some."""
        beijing = dt.timezone(dt.timedelta(hours=8))
        if self.rng.random() < 0.8:
            return dt.datetime(YEAR, month, 27, 18, 0, tzinfo=beijing)
        year, nxt = (YEAR, month + 1) if month < 12 else (YEAR + 1, 1)
        return dt.datetime(year, nxt, 5, 9, 0, tzinfo=beijing)

    def _revise(self, *, retract: bool) -> dict[str, Any]:
        r = self.rng
        i = r.randrange(len(self._live))
        aid = self._live[i]
        a = self.activities[aid]
        a.revision += 1
        if retract:
            a.retracted = True
            self._live[i] = self._live[-1]
            self._live.pop()
            self.counts.retractions += 1
        else:
            self.counts.corrections += 1
            for k in ("attendees", "audience", "participants", "volunteers", "served", "items"):
                if k in a.data:
                    top = a.data["members"] if k == "attendees" else a.data[k] + 20
                    a.data[k] = r.randint(0, top)
        later = a.first_time + dt.timedelta(days=r.randint(1, 20))
        return self._event(aid, a, later)


class Expected:
    """The aggregates the stream sent so far must produce, per (node, period, metric)."""

    def __init__(self, paths: dict[str, tuple[str, ...]], stream: Stream) -> None:
        self.values: dict[tuple[str, str], dict[str, int]] = defaultdict(
            lambda: dict.fromkeys(CHECKED, 0)
        )
        self.members: dict[tuple[str, str], int] = defaultdict(int)
        for a in stream.activities.values():
            if a.retracted:
                continue
            day = dt.date.fromisoformat(a.data["date"])
            for node in paths[a.unit]:
                for period in periods_of(day):
                    self._add(self.values[node, period], a, day, (node, period))

    def _add(self, into: dict[str, int], a: Activity, day: dt.date, key: tuple[str, str]) -> None:
        d = a.data
        if a.type == PD:
            on_time = a.first_time <= deadline(day.month)
            into["party_day.held"] += 1
            into["party_day.on_time" if on_time else "party_day.late"] += 1
            into["party_day.attendees"] += d["attendees"]
            self.members[key] += d["members"]
        elif a.type == LESSON:
            into["lesson.delivered"] += 1
            into["lesson.audience"] += d["audience"]
        elif a.type == TRAINING:
            into["training.sessions"] += 1
            into["training.participants"] += d["participants"]
        elif a.type == VOLUNTEER:
            into["volunteer.volunteers"] += d["volunteers"]
            into["volunteer.served"] += d["served"]
        else:
            into["feedback.collected"] += d["items"]

    def of(self, node: str, period: str) -> dict[str, int]:
        """Expected metrics of a node in a period (zeros when nothing was sent)."""
        return self.values.get((node, period)) or dict.fromkeys(CHECKED, 0)

    def attendance_rate(self, node: str, period: str) -> float | None:
        """Attendees over the members of the branches that held their Party Day."""
        members = self.members.get((node, period), 0)
        return self.of(node, period)["party_day.attendees"] / members if members else None


def progress_target(stream: Stream) -> tuple[int, int]:
    """(activities, sum of their latest revisions): the rollup's facts once it caught up."""
    acts = stream.activities.values()
    return len(stream.activities), sum(a.revision for a in acts)
