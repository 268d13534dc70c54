"""Realistic org trees and activity for the benchmark: pure, seeded, with expected totals.

Trees are skewed the way real ones are: township sizes and county sizes drawn from
log-normal distributions, members per branch log-normal too (a city of 7,000 branches has
about 200,000 members; a national sample averages 20 members a branch). "National by
sampling" draws whole counties from the national size distribution until the sample
reaches the requested number of branches, and records the factor that scales its figures
to the 5 million branches and 100 million members of the whole country.

Activity follows the monthly rhythm: the Party Day burst on the 26th (reports in the
afternoon and evening of that day), some branches late (after the deadline), some never;
duplicates (the same message sent again), corrections (a second revision) and retractions;
lessons, screenings, volunteer service at branches; trainings and feedback rounds at
townships; outreach lectures at counties. `Workload.expected` is computed while planning
(what each activity should end up contributing); `replay()` recomputes it from the event
stream alone with the pipeline's semantics, and the unit tests check that both agree.

Nothing here does I/O; the same seed always gives the same tree and the same events.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from huibao_contracts import activities
from huibao_contracts.calendar import CalendarRules
from huibao_contracts.periods import Period

PD = activities.PARTY_DAY_TYPE
LESSON = activities.LESSON_TYPE
TRAINING = activities.TRAINING_TYPE
OUTREACH = activities.OUTREACH_TYPE
VOLUNTEER = activities.VOLUNTEER_TYPE
FB_COLLECTED = activities.FEEDBACK_COLLECTED_TYPE
FB_RESOLVED = activities.FEEDBACK_RESOLVED_TYPE
SCREENING = activities.SCREENING_TYPE

SOURCE = "/bench/platform"

NATIONAL_BRANCHES = 5_000_000
NATIONAL_MEMBERS = 100_000_000
NATIONAL_COUNTIES = 2_844  # county-level divisions of the country

CHECKED_METRICS: tuple[str, ...] = (
    "party_day.held",
    "party_day.on_time",
    "party_day.late",
    "party_day.attendees",
    "lesson.delivered",
    "lesson.audience",
    "training.sessions",
    "training.participants",
    "outreach.sessions",
    "outreach.audience",
    "volunteer.volunteers",
    "volunteer.served",
    "feedback.collected",
    "feedback.resolved",
    "screening.held",
)
"""Public summary metrics the activity decides (and the benchmark checks exactly)."""


# --- trees -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Tree:
    """An org tree as OrgUnit-shaped dicts (parents before children) and lookups."""

    root: str
    units: list[dict[str, Any]]
    branches: list[str]
    members: dict[str, int]
    parent: dict[str, str | None]
    level: dict[str, str]
    scale: dict[str, Any] = field(default_factory=dict)

    def path(self, unit: str) -> list[str]:
        """Ancestors root → unit, the unit last."""
        out = [unit]
        p = self.parent.get(unit)
        while p is not None:
            out.append(p)
            p = self.parent.get(p)
        return out[::-1]

    def of_level(self, level: str) -> list[str]:
        """Every unit of `level`, in tree order."""
        return [str(u["id"]) for u in self.units if u["level"] == level]

    @property
    def total_members(self) -> int:
        """Party members of every branch."""
        return sum(self.members.values())


def _lognormal_mean(rng: random.Random, mean: float, sigma: float) -> float:
    """A log-normal draw whose distribution has the given mean."""
    return rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma)


def _sizes(
    rng: random.Random, total: int, mean: float, sigma: float, lo: int, hi: int
) -> list[int]:
    """Skewed positive sizes that add up to exactly `total`."""
    out: list[int] = []
    left = total
    while left > 0:
        n = min(left, max(lo, min(hi, round(_lognormal_mean(rng, mean, sigma)))))
        out.append(n)
        left -= n
    return out


def _build(
    root: str,
    root_name: str,
    county_branch_counts: Sequence[int],
    *,
    rng: random.Random,
    member_mean: float,
    township_mean: float,
) -> Tree:
    units: list[dict[str, Any]] = [{"id": root, "name": root_name, "level": "city"}]
    parent: dict[str, str | None] = {root: None}
    level = {root: "city"}
    branches: list[str] = []
    members: dict[str, int] = {}
    for c, county_size in enumerate(county_branch_counts):
        county = f"{root}.c{c:04d}"
        units.append({"id": county, "name": f"第{c + 1}县", "level": "county", "parent": root})
        parent[county], level[county] = root, "county"
        for t, town_size in enumerate(_sizes(rng, county_size, township_mean, 0.6, 3, 400)):
            town = f"{county}.t{t:03d}"
            units.append(
                {
                    "id": town,
                    "name": f"第{c + 1}县第{t + 1}镇",
                    "level": "township",
                    "parent": county,
                }
            )
            parent[town], level[town] = county, "township"
            for b in range(town_size):
                branch = f"{town}.b{b:03d}"
                size = max(3, min(800, round(_lognormal_mean(rng, member_mean, 0.6))))
                units.append(
                    {
                        "id": branch,
                        "name": f"第{t + 1}镇第{b + 1}党支部",
                        "level": "branch",
                        "parent": town,
                        "members": size,
                    }
                )
                parent[branch], level[branch] = town, "branch"
                branches.append(branch)
                members[branch] = size
    return Tree(root, units, branches, members, parent, level)


def city_tree(branches: int = 7_000, *, root: str = "bcity", seed: int = 7) -> Tree:
    """A city of `branches` branches (about 28.6 members each: 7,000 → ~200,000 members),
    in counties of skewed size (mean 600 branches) and townships (mean 35 branches)."""
    rng = random.Random(seed)
    counties = _sizes(rng, branches, 600, 0.5, 50, 3000)
    tree = _build(root, "基准市", counties, rng=rng, member_mean=28.6, township_mean=35)
    tree.scale = {"kind": "city", "branches": branches, "factor": 1.0}
    return tree


def national_sample(
    branches: int = 100_000,
    *,
    root: str = "bnation",
    seed: int = 11,
    national_branches: int = NATIONAL_BRANCHES,
    national_members: int = NATIONAL_MEMBERS,
) -> Tree:
    """Whole counties drawn from the national size distribution until the sample holds
    `branches` branches (the last county trimmed); `scale["factor"]` scales to the country."""
    rng = random.Random(seed)
    county_mean = national_branches / NATIONAL_COUNTIES
    counties = _sizes(rng, branches, county_mean, 0.7, 100, 12_000)
    tree = _build(
        root,
        "全国抽样",
        counties,
        rng=rng,
        member_mean=national_members / national_branches,
        township_mean=40,
    )
    tree.scale = {
        "kind": "national_sample",
        "branches": branches,
        "counties_sampled": len(counties),
        "national_branches": national_branches,
        "national_members": national_members,
        "factor": national_branches / branches,
        "members_factor": national_members / max(1, tree.total_members),
    }
    return tree


# --- activity ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Expected:
    """What the rollup must show: metric totals by (node, period) for every non-branch node."""

    totals: dict[tuple[str, str], Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )

    def add(self, tree: Tree, unit: str, day: dt.date, amounts: dict[str, int]) -> None:
        """Add one activity's final contribution to every non-branch ancestor, by month."""
        month = str(Period.month_of(day))
        for node in tree.path(unit):
            if tree.level[node] != "branch":
                self.totals[(node, month)].update(amounts)

    def of(self, node: str, period: str) -> dict[str, int]:
        """Every checked metric of `node` for a month (0 when nothing was planned)."""
        got = self.totals.get((node, period), Counter())
        return {m: int(got.get(m, 0)) for m in CHECKED_METRICS}


@dataclass(slots=True)
class Workload:
    """The events to publish, in order, and the totals they must produce."""

    events: list[dict[str, Any]]
    expected: Expected
    months: list[str]
    counts: Counter[str] = field(default_factory=Counter)


def _ce(
    etype: str, subject: str, data: dict[str, Any], at: dt.datetime, eid: str
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": eid,
        "source": SOURCE,
        "type": etype,
        "subject": subject,
        "time": at.isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }


def party_day_contribution(data: dict[str, Any], on_time: bool) -> dict[str, int]:
    """What a (not retracted) Party Day report adds."""
    return {
        "party_day.held": 1,
        "party_day.on_time": int(on_time),
        "party_day.late": int(not on_time),
        "party_day.attendees": int(data["attendees"]),
    }


def contribution_of(etype: str, data: dict[str, Any], on_time: bool | None) -> dict[str, int]:
    """What one activity revision adds to the checked metrics (nothing when retracted)."""
    if data.get("retracted"):
        return {}
    if etype == PD:
        return party_day_contribution(data, bool(on_time))
    rules: dict[str, dict[str, str]] = {
        LESSON: {"lesson.delivered": "=1", "lesson.audience": "audience"},
        TRAINING: {"training.sessions": "=1", "training.participants": "participants"},
        OUTREACH: {"outreach.sessions": "=1", "outreach.audience": "audience"},
        VOLUNTEER: {"volunteer.volunteers": "volunteers", "volunteer.served": "served"},
        FB_COLLECTED: {"feedback.collected": "items"},
        FB_RESOLVED: {"feedback.resolved": "items"},
        SCREENING: {"screening.held": "=1"},
    }
    return {m: 1 if f == "=1" else int(data[f]) for m, f in rules.get(etype, {}).items()}


def month_workload(  # noqa: PLR0912, PLR0915
    tree: Tree,
    months: Iterable[str],
    *,
    seed: int = 13,
    missing: float = 0.06,
    late: float = 0.07,
    duplicate: float = 0.03,
    correction: float = 0.04,
    retraction: float = 0.005,
    lessons: float = 0.33,
    screenings: float = 0.15,
    volunteering: float = 0.10,
    not_after: dt.datetime | None = None,
    calendar: CalendarRules | None = None,
) -> Workload:
    """Every event of `months` in publish order (by recorded time), with expected totals.

    `not_after` caps recorded times (a late report cannot come from the future).
    """
    cal = calendar or CalendarRules()
    tz = ZoneInfo(cal.timezone)
    rng = random.Random(seed)
    expected = Expected()
    counts: Counter[str] = Counter()
    events: list[tuple[dt.datetime, int, dict[str, Any]]] = []
    seq = 0
    month_list = [str(m) for m in months]

    def emit(at: dt.datetime, ev: dict[str, Any], kind: str) -> None:
        nonlocal seq
        if not_after is not None and at > not_after:
            at = not_after
            ev["time"] = at.isoformat()
        seq += 1
        events.append((at, seq, ev))
        counts[kind] += 1

    n = 0

    def next_id() -> str:
        nonlocal n
        n += 1
        return f"g{seed}-{n:08d}"

    for m in month_list:
        month = Period.parse(m)
        pday = cal.party_day_date(month)
        deadline = cal.deadline(month)
        for branch in tree.branches:
            members = tree.members[branch]
            roll = rng.random()
            if roll >= missing:  # this branch held its Party Day
                is_late = roll < missing + late
                if is_late:
                    at = deadline + dt.timedelta(minutes=rng.randint(60, 100 * 60))
                else:  # the burst: afternoon and evening of the 26th
                    minute = min(23 * 60 + 59, max(8 * 60, round(rng.gauss(16 * 60, 150))))
                    at = dt.datetime.combine(pday, dt.time(minute // 60, minute % 60), tzinfo=tz)
                if not_after is not None and at > not_after:
                    at = not_after
                on_time = at <= deadline
                attendees = max(1, round(members * rng.uniform(0.7, 0.98)))
                activity = f"pd-{branch}-{m}"
                data: dict[str, Any] = {
                    "activity_id": activity,
                    "revision": 1,
                    "date": pday.isoformat(),
                    "members": members,
                    "attendees": attendees,
                    "theme": "学习贯彻党的创新理论",
                    "agenda": ["oath_renewal", "collective_study", "dues_collection"],
                }
                first = _ce(PD, branch, data, at, next_id())
                emit(at, first, "party_day")
                final: dict[str, int] = party_day_contribution(data, on_time)
                if rng.random() < duplicate:  # the same message again, minutes later
                    emit(at + dt.timedelta(minutes=rng.randint(1, 30)), dict(first), "duplicate")
                r = rng.random()
                if r < retraction:  # withdrawn: counts nothing
                    fixed = {**data, "revision": 2, "retracted": True}
                    emit(
                        at + dt.timedelta(hours=1),
                        _ce(PD, branch, fixed, at + dt.timedelta(hours=1), next_id()),
                        "retraction",
                    )
                    final = {}
                elif r < retraction + correction:  # corrected head count
                    fixed = {**data, "revision": 2, "attendees": min(members, attendees + 1)}
                    emit(
                        at + dt.timedelta(hours=1),
                        _ce(PD, branch, fixed, at + dt.timedelta(hours=1), next_id()),
                        "correction",
                    )
                    final = party_day_contribution(fixed, on_time)
                if final:
                    expected.add(tree, branch, pday, final)
            for kind, share in (
                (LESSON, lessons),
                (SCREENING, screenings),
                (VOLUNTEER, volunteering),
            ):
                if rng.random() >= share:
                    continue
                day = pday - dt.timedelta(days=rng.randint(1, 20))
                at = dt.datetime.combine(day, dt.time(rng.randint(8, 20)), tzinfo=tz)
                audience = max(1, round(members * rng.uniform(0.5, 1.0)))
                if kind == LESSON:
                    data = {
                        "activity_id": f"ls-{branch}-{m}",
                        "date": day.isoformat(),
                        "speaker_role": rng.choice(
                            ["branch_secretary", "ordinary_member", "leading_cadre"]
                        ),
                        "topic": "我来讲党课",
                        "format": rng.choice(["on_site", "online", "field_teaching"]),
                        "audience": audience,
                        "duration_minutes": 45,
                    }
                elif kind == SCREENING:
                    data = {
                        "activity_id": f"sc-{branch}-{m}",
                        "date": day.isoformat(),
                        "film": "《焦裕禄》",
                        "audience": audience,
                    }
                else:
                    data = {
                        "activity_id": f"vo-{branch}-{m}",
                        "date": day.isoformat(),
                        "volunteers": max(1, audience // 3),
                        "served": audience * rng.randint(2, 10),
                        "hours": 3,
                    }
                emit(at, _ce(kind, branch, data, at, next_id()), kind.split(".")[1])
                expected.add(tree, branch, day, contribution_of(kind, data, None))
        for town in tree.of_level("township"):
            day = pday - dt.timedelta(days=10)
            at = dt.datetime.combine(day, dt.time(9), tzinfo=tz)
            training = {
                "activity_id": f"tr-{town}-{m}",
                "date": day.isoformat(),
                "target_group": rng.choice(["secretaries", "backbone", "ordinary"]),
                "participants": rng.randint(25, 90),
                "hours": 6,
            }
            collected = rng.randint(0, 30)
            items = [
                (TRAINING, training),
                (
                    FB_COLLECTED,
                    {"activity_id": f"fc-{town}-{m}", "date": day.isoformat(), "items": collected},
                ),
                (
                    FB_RESOLVED,
                    {
                        "activity_id": f"fr-{town}-{m}",
                        "date": day.isoformat(),
                        "items": rng.randint(0, collected),
                    },
                ),
            ]
            for kind, data in items:
                emit(at, _ce(kind, town, data, at, next_id()), kind.split(".")[1])
                expected.add(tree, town, day, contribution_of(kind, data, None))
        for county in tree.of_level("county"):
            for k in range(2):
                day = pday - dt.timedelta(days=5 + k)
                at = dt.datetime.combine(day, dt.time(15), tzinfo=tz)
                present = rng.randint(60, 300)
                data = {
                    "activity_id": f"or-{county}-{m}-{k}",
                    "date": day.isoformat(),
                    "audience": present,
                    "expected": present + rng.randint(0, 20),
                    "present": present,
                    "responses": present // 2,
                    "satisfied": present // 2,
                    "good": present // 3,
                }
                emit(at, _ce(OUTREACH, county, data, at, next_id()), "outreach")
                expected.add(tree, county, day, contribution_of(OUTREACH, data, None))
    events.sort(key=lambda e: (e[0], e[1]))
    return Workload([e for _, _, e in events], expected, month_list, counts)


def load_event(tree: Tree, n: int, day: dt.date, *, exclude: str | None = None) -> dict[str, Any]:
    """The n-th steady-load event (n ≥ 0): a lesson with its own activity id at some branch.

    A pure function of `n`, so a run can add up what it sent with `load_totals`.
    """
    branches = tree.branches
    branch = branches[(n * 7919) % len(branches)]
    if branch == exclude:
        branch = branches[(n * 7919 + 1) % len(branches)]
    at = dt.datetime.combine(day, dt.time(10), tzinfo=ZoneInfo("Asia/Shanghai"))
    data = {
        "activity_id": f"ld-{n}",
        "date": day.isoformat(),
        "speaker_role": "ordinary_member",
        "topic": "微党课",
        "format": "online",
        "audience": 1 + n % 50,
        "duration_minutes": 20,
    }
    return _ce(LESSON, branch, data, at, f"ld-{n}")


def load_totals(count: int) -> dict[str, int]:
    """Lesson totals of load events 0..count-1 (every one visible at the root)."""
    return {"lesson.delivered": count, "lesson.audience": sum(1 + n % 50 for n in range(count))}


def probe_event(branch: str, k: int, day: dt.date) -> dict[str, Any]:
    """The k-th freshness probe (k ≥ 1): a lesson at the probe branch, audience 1."""
    at = dt.datetime.combine(day, dt.time(11), tzinfo=ZoneInfo("Asia/Shanghai"))
    data = {
        "activity_id": f"probe-{k}",
        "date": day.isoformat(),
        "speaker_role": "expert",
        "topic": "probe",
        "format": "online",
        "audience": 1,
        "duration_minutes": 1,
    }
    return _ce(LESSON, branch, data, at, f"probe-{k}")


# --- the reference: what the pipeline must make of a stream -------------------------------------


def replay(
    tree: Tree, events: Iterable[dict[str, Any]], calendar: CalendarRules | None = None
) -> Expected:
    """Fold a stream the way the pipeline must: a repeated `source`+`id` changes nothing, a
    higher revision replaces an activity's contribution, a retraction removes it, and a Party
    Day is on time when its first accepted report's `time` beats its month's deadline."""
    cal = calendar or CalendarRules()
    seen: set[tuple[str, str]] = set()
    state: dict[str, tuple[int, str, str, dict[str, Any]]] = {}
    first_at: dict[str, dt.datetime] = {}
    for ev in events:
        key = (str(ev["source"]), str(ev["id"]))
        if key in seen:
            continue
        seen.add(key)
        data = ev["data"]
        activity = str(data["activity_id"])
        revision = int(data.get("revision", 1))
        first_at.setdefault(activity, dt.datetime.fromisoformat(str(ev["time"])))
        current = state.get(activity)
        if current is None or revision > current[0]:
            state[activity] = (revision, str(ev["type"]), str(ev["subject"]), data)
    out = Expected()
    for activity, (_, etype, unit, data) in state.items():
        day = dt.date.fromisoformat(str(data["date"]))
        on_time = None
        if etype == PD:
            on_time = cal.is_on_time(Period.month_of(day), first_at[activity])
        amounts = contribution_of(etype, data, on_time)
        if amounts:
            out.add(tree, unit, day, amounts)
    return out


def months_before(today: dt.date, count: int) -> list[str]:
    """The `count` full months before the month of `today`, oldest first."""
    m = Period.month_of(today)
    out = []
    for _ in range(count):
        m = m.previous()
        out.append(str(m))
    return out[::-1]
