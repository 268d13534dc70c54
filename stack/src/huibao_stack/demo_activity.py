"""A simulated quarter of activity for the demo city, with the totals it must produce.

Pure and seeded. Each month: most branches report their Party Day on time, some late, some
not at all; some reports are corrected (a second revision) and some are sent twice (a
duplicate); branches and townships also report lessons and training sessions. The expected
totals are computed here, independently of the services, so the demo can check the rollup.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from huibao_contracts.activities import LESSON_TYPE, PARTY_DAY_TYPE, TRAINING_TYPE
from huibao_contracts.calendar import CalendarRules
from huibao_contracts.periods import Period
from huibao_stack.demo_city import DemoCity

SOURCE = "/platforms/demo-dangjian"
KAFKA_SOURCE = "/platforms/demo-county-gateway"


@dataclass(slots=True)
class Outgoing:
    """One CloudEvent to send and the channel that sends it."""

    event: dict[str, object]
    channel: str  # "http" or "kafka"


@dataclass(slots=True)
class MonthPlan:
    """What the demo sends in one month, before and after the deadline."""

    month: Period
    on_time: list[Outgoing] = field(default_factory=list)
    late: list[Outgoing] = field(default_factory=list)


@dataclass(slots=True)
class Expected:
    """Totals per county and for the city that the rollup must show for the quarter."""

    by_county: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, county: str, metric: str, value: int) -> None:
        self.by_county[county][metric] += value

    def city(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for c in self.by_county.values():
            total.update(c)
        return total


def _event(
    etype: str, subject: str, data: dict[str, object], recorded: dt.datetime, n: int, source: str
) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": f"demo-{n:07d}",
        "source": source,
        "type": etype,
        "subject": subject,
        "time": recorded.isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }


def simulate_quarter(
    city: DemoCity, quarter: Period, calendar: CalendarRules | None = None, seed: int = 11
) -> tuple[list[MonthPlan], Expected]:
    """The events of every month of `quarter` and the quarter totals they must produce."""
    cal = calendar or CalendarRules()
    tz = ZoneInfo(cal.timezone)
    rng = random.Random(seed)
    expected = Expected()
    plans: list[MonthPlan] = []
    n = 0
    for month in quarter.months():
        plan = MonthPlan(month)
        party_day = cal.party_day_date(month)
        deadline = cal.deadline(month)
        for branch in city.branches:
            county = city.county_of[branch]
            expected.add(county, "party_day.expected", 1)
            channel = "kafka" if rng.random() < 0.35 else "http"
            source = KAFKA_SOURCE if channel == "kafka" else SOURCE
            roll = rng.random()
            if roll < 0.06:
                continue  # missing: never reported
            late = roll < 0.13
            members = city.members[branch]
            attendees = max(1, round(members * rng.uniform(0.72, 0.98)))
            recorded = (
                deadline + dt.timedelta(hours=rng.randint(2, 100))
                if late
                else dt.datetime.combine(party_day, dt.time(rng.randint(9, 20)), tzinfo=tz)
            )
            activity = f"pd-{branch}-{month}"
            data: dict[str, object] = {
                "activity_id": activity,
                "revision": 1,
                "date": party_day.isoformat(),
                "members": members,
                "attendees": attendees,
                "theme": "学习贯彻党的创新理论",
                "agenda": ["oath_renewal", "collective_study", "dues_collection"],
                "lesson": "党章学习",
                "film": "《焦裕禄》",
                "practice": "环境整治志愿服务",
            }
            n += 1
            bucket = plan.late if late else plan.on_time
            bucket.append(
                Outgoing(_event(PARTY_DAY_TYPE, branch, data, recorded, n, source), channel)
            )
            if rng.random() < 0.05:  # the same message again: a duplicate, counted once
                bucket.append(
                    Outgoing(
                        _event(PARTY_DAY_TYPE, branch, data, recorded, n, source),
                        channel,
                    )
                )
            if rng.random() < 0.04:  # a correction: more attendees were counted afterwards
                attendees = min(members, attendees + 1)
                n += 1
                fixed = {**data, "revision": 2, "attendees": attendees}
                bucket.append(
                    Outgoing(
                        _event(
                            PARTY_DAY_TYPE,
                            branch,
                            fixed,
                            recorded + dt.timedelta(hours=1),
                            n,
                            source,
                        ),
                        channel,
                    )
                )
            expected.add(county, "party_day.held", 1)
            expected.add(county, "party_day.late" if late else "party_day.on_time", 1)
            expected.add(county, "party_day.attendees", attendees)
            expected.add(county, "party_day.members", members)
            # "我来讲党课": about a third of branches hold a lesson each month.
            if rng.random() < 0.33:
                audience = max(1, round(members * rng.uniform(0.6, 1.0)))
                n += 1
                plan.on_time.append(
                    Outgoing(
                        _event(
                            LESSON_TYPE,
                            branch,
                            {
                                "activity_id": f"ls-{branch}-{month}",
                                "date": (
                                    party_day - dt.timedelta(days=rng.randint(1, 20))
                                ).isoformat(),
                                "speaker_role": rng.choice(
                                    ["branch_secretary", "ordinary_member", "leading_cadre"]
                                ),
                                "topic": "我来讲党课：基层治理",
                                "format": rng.choice(["on_site", "online", "field_teaching"]),
                                "audience": audience,
                                "duration_minutes": 45,
                            },
                            dt.datetime.combine(party_day, dt.time(8), tzinfo=tz),
                            n,
                            source,
                        ),
                        channel,
                    )
                )
                expected.add(county, "lesson.delivered", 1)
                expected.add(county, "lesson.audience", audience)
        # Each township runs one training session a month for one target group.
        for township in sorted(set(city.township_of.values())):
            county = township.rsplit(".", 1)[0]
            participants = rng.randint(25, 90)
            n += 1
            plan.on_time.append(
                Outgoing(
                    _event(
                        TRAINING_TYPE,
                        township,
                        {
                            "activity_id": f"tr-{township}-{month}",
                            "date": (party_day - dt.timedelta(days=10)).isoformat(),
                            "target_group": rng.choice(["secretaries", "backbone", "ordinary"]),
                            "participants": participants,
                            "hours": 6,
                        },
                        dt.datetime.combine(party_day, dt.time(8), tzinfo=tz),
                        n,
                        SOURCE,
                    ),
                    "http",
                )
            )
            expected.add(county, "training.sessions", 1)
            expected.add(county, "training.participants", participants)
        plans.append(plan)
    return plans, expected
