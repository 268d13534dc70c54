"""Person-hours, volunteer hours, lesson minutes, screening audience and rates (issue 15.3),
through the real rollup on the real broker and PostgreSQL: exact at branch, county and city
after a correction and a retraction; rates divided from the node's sums (the cases are built
so that averaging the children's rates would give another number); null / an empty CSV cell
when a denominator is 0; the fast path, the routes and CSV agree; verify and rebuild equal
live; rows stored before the new sums were appended read as 0 for them."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from tests.service.rollup_support import Client, Harness, accepted, party_day

from huibao_contracts.periods import Period
from huibao_rollup.adapters import pg_admin
from huibao_rollup.domain.aggregation import SLOTS
from huibao_stack.infra import Infrastructure

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

ON_TIME = "2026-06-27T10:00:00+08:00"
LATE = "2026-06-30T00:00:01+08:00"
TRAINING = "huibao.training.held.v1"
OUTREACH = "huibao.outreach.held.v1"
LESSON = "huibao.lesson.delivered.v1"
VOLUNTEER = "huibao.volunteer.served.v1"
SCREENING = "huibao.screening.held.v1"
C1, C2 = "ph.c1", "ph.c2"
B11, B12, B21, B22 = "ph.c1.t1.b1", "ph.c1.t1.b2", "ph.c2.t1.b1", "ph.c2.t1.b2"
RATES = (
    "party_day.reporting_rate",
    "party_day.on_time_rate",
    "outreach.attendance_rate",
    "outreach.satisfaction_rate",
    "outreach.good_rate",
)
NEW_SUMS = ("training.person_hours", "volunteer.hours", "lesson.minutes", "screening.audience")


@pytest_asyncio.fixture(loop_scope="session")
async def harness(infra: Infrastructure) -> AsyncIterator[Harness]:
    h = Harness(infra, "person-hours")
    await h.setup(partitions=2)
    try:
        yield h
    finally:
        await h.close()


def tree() -> list[dict[str, Any]]:
    """City ph; counties c1 and c2, one township each, two branches each."""
    units: list[dict[str, Any]] = [{"id": "ph", "name": "ph", "level": "city"}]
    for c in (C1, C2):
        units.append({"id": c, "name": c, "level": "county", "parent": "ph"})
        units.append({"id": f"{c}.t1", "name": f"{c}.t1", "level": "township", "parent": c})
        for b in ("b1", "b2"):
            units.append(
                {"id": f"{c}.t1.{b}", "name": b, "level": "branch", "parent": f"{c}.t1"}
                | {"members": 10}
            )
    return units


def event(type_: str, unit: str, aid: str, revision: int = 1, **data: Any) -> tuple[str, bytes]:
    body = {"activity_id": aid, "revision": revision, "date": "2026-06-10", **data}
    return accepted(type_, unit, body, id=f"{aid}-r{revision}")


def training(
    unit: str, aid: str, participants: int, revision: int = 1, **data: Any
) -> tuple[str, bytes]:
    base: dict[str, Any] = {"target_group": "secretaries", "participants": participants}
    return event(TRAINING, unit, aid, revision, **(base | {"hours": 3} | data))


def outreach(
    unit: str, aid: str, expected: int, present: int, responses: int, satisfied: int, good: int
) -> dict[str, Any]:
    return {
        "unit": unit,
        "aid": aid,
        "audience": present,
        "expected": expected,
        "present": present,
        "responses": responses,
        "satisfied": satisfied,
        "good": good,
    }


def outreach_event(o: dict[str, Any], revision: int = 1) -> tuple[str, bytes]:
    fields = {k: v for k, v in o.items() if k not in ("unit", "aid")}
    return event(OUTREACH, o["unit"], o["aid"], revision, **fields)


FIRST = [
    party_day(B11, "2026-06", time=ON_TIME),
    party_day(B12, "2026-06", time=LATE),
    party_day(B21, "2026-06", time=ON_TIME),
    # B22 holds no Party Day: its on-time rate has no denominator
    training(B11, "tr-1", 30),  # an old payload (no duration): 30 × 3 h = 90
    training("ph.c1.t1", "tr-2", 10, duration="half_day"),  # 10 × 3.5 (configured) = 35
    training(B21, "tr-3", 5, hours=1.5),  # 7.5, then retracted
    training(C2, "tr-4", 12, hours=2.5),  # 30
    outreach_event(outreach(B11, "o-1", 10, 9, 8, 8, 8)),
    outreach_event(outreach(B22, "o-2", 30, 1, 2, 1, 0)),
    event(LESSON, B12, "ls-1", speaker_role="expert", topic="t", audience=40, duration_minutes=50),
    event(LESSON, B21, "ls-2", speaker_role="expert", topic="t", audience=9, duration_minutes=30),
    event(VOLUNTEER, B11, "v-1", volunteers=4, served=20, hours=12.5),
    event(VOLUNTEER, C2, "v-2", volunteers=2, served=5, hours=3),
    event(SCREENING, B22, "s-1", film="f", audience=60),
    event(SCREENING, B11, "s-2", film="f", audience=25),
]
SECOND = [
    # a correction: 20 participants for two full days, 20 × 16 = 320
    training(B11, "tr-1", 20, revision=2, duration="full_day", days=2),
    training(B21, "tr-3", 5, revision=2, hours=1.5, retracted=True),
    outreach_event(outreach(B22, "o-2", 30, 3, 2, 1, 0), revision=2),
    event(LESSON, B21, "ls-2", 2, speaker_role="expert", topic="t", audience=9, retracted=True),
]

EXPECTED: dict[str, dict[str, Any]] = {
    "ph": {
        "training.person_hours": 385,
        "volunteer.hours": 15.5,
        "lesson.minutes": 50,
        "screening.audience": 85,
        "party_day.reporting_rate": 0.75,  # 3 / 4
        "party_day.on_time_rate": 0.666667,  # 2 / 3; the counties' mean is 0.75
        "outreach.attendance_rate": 0.3,  # 12 / 40; the counties' mean is 0.5
        "outreach.satisfaction_rate": 0.9,  # 9 / 10; the counties' mean is 0.75
        "outreach.good_rate": 0.8,  # 8 / 10; the counties' mean is 0.5
    },
    C1: {
        "training.person_hours": 355,
        "volunteer.hours": 12.5,
        "lesson.minutes": 50,
        "screening.audience": 25,
        "party_day.reporting_rate": 1,
        "party_day.on_time_rate": 0.5,
        "outreach.attendance_rate": 0.9,
        "outreach.satisfaction_rate": 1,
        "outreach.good_rate": 1,
    },
    C2: {
        "training.person_hours": 30,
        "volunteer.hours": 3,
        "lesson.minutes": 0,
        "screening.audience": 60,
        "party_day.reporting_rate": 0.5,
        "party_day.on_time_rate": 1,
        "outreach.attendance_rate": 0.1,
        "outreach.satisfaction_rate": 0.5,
        "outreach.good_rate": 0,
    },
    B11: {
        "training.person_hours": 320,
        "volunteer.hours": 12.5,
        "party_day.on_time_rate": 1,
        "outreach.good_rate": 1,
    },
    B22: {
        "training.person_hours": 0,
        "screening.audience": 60,
        "party_day.reporting_rate": 0,
        "party_day.on_time_rate": None,  # held 0: no denominator
        "outreach.attendance_rate": 0.1,
        "outreach.good_rate": 0,
    },
    B21: {"training.person_hours": 0, "lesson.minutes": 0, "outreach.good_rate": None},
}


async def summaries(rollup: Client, node: str, period: str) -> dict[str, Any]:
    """The summary from the fast path, checked against the route's and the CSV's."""
    fast = await rollup.http.get(f"/v1/nodes/{node}/summary", params={"period": period})
    # a parameter given twice is never the fast path's: the route answers
    route = await rollup.http.get(f"/v1/nodes/{node}/summary?period={period}&period={period}")
    as_csv = await rollup.http.get(
        f"/v1/nodes/{node}/summary", params={"period": period, "format": "csv"}
    )
    assert fast.status_code == route.status_code == as_csv.status_code == 200, fast.text
    assert fast.json() == route.json()
    metrics: dict[str, Any] = fast.json()["metrics"]
    cells = {r["metric"]: r["value"] for r in csv.DictReader(io.StringIO(as_csv.text))}
    assert cells == {m: "" if v is None else str(v) for m, v in metrics.items()}
    return metrics


async def assert_figures(rollup: Client) -> None:
    for node, want in EXPECTED.items():
        got = await summaries(rollup, node, "2026-06")
        assert {m: got[m] for m in want} == want, node
        # a year is the sum of its months: the same figures (but the year's expected
        # Party Days count every month whose Party Day has come, so not its reporting rate)
        year = await rollup.metrics(node, "2026")
        same = {m: v for m, v in want.items() if m != "party_day.reporting_rate"}
        assert {m: year[m] for m in same} == same, node


async def test_person_hours_and_rates_exact_at_every_level(harness: Harness) -> None:
    await harness.tree(tree())
    await harness.events(FIRST)
    async with harness.replica(class_hours_per_half_day=Decimal("3.5")) as rollup:
        await rollup.wait_for("ph", "2026-06", {"training.sessions": 4, "screening.held": 2})
        first = await rollup.metrics("ph", "2026-06")
        assert first["training.person_hours"] == 90 + 35 + 7.5 + 30
        assert first["outreach.attendance_rate"] == 0.25  # (9 + 1) / 40
        assert first["lesson.minutes"] == 80
        await harness.events(SECOND)
        await rollup.wait_for("ph", "2026-06", {"training.sessions": 3, "lesson.delivered": 1})
        await rollup.wait_for("ph", "2026-06", {"outreach.attendance_rate": 0.3})
        await assert_figures(rollup)

        # children: every child's rate from its own sums, ranked; CSV leaves a null empty
        r = await rollup.http.get(
            "/v1/nodes/ph.c2.t1/children",
            params={"period": "2026-06", "metric": "party_day.on_time_rate"},
        )
        assert r.status_code == 200, r.text
        assert [(i["id"], i["value"], i["rank"]) for i in r.json()["items"]] == [
            (B21, 1, 1),
            (B22, None, 2),
        ]
        metric = "metric=outreach.attendance_rate"
        fast = await rollup.http.get(f"/v1/nodes/ph/children?period=2026-06&{metric}")
        route = await rollup.http.get(f"/v1/nodes/ph/children?period=2026-06&{metric}&{metric}")
        assert fast.status_code == route.status_code == 200, fast.text
        assert fast.json() == route.json()
        assert [(i["id"], i["value"]) for i in fast.json()["items"]] == [(C1, 0.9), (C2, 0.1)]
        r = await rollup.http.get(
            "/v1/nodes/ph/children",
            params={"period": "2026-06", "metric": "outreach.attendance_rate", "format": "csv"},
        )
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert [(row["id"], row["value"]) for row in rows] == [(C1, "0.9"), (C2, "0.1")]
        r = await rollup.http.get(
            "/v1/nodes/ph.c2.t1/children",
            params={"period": "2026-06", "metric": "party_day.on_time_rate", "format": "csv"},
        )
        assert [row["value"] for row in csv.DictReader(io.StringIO(r.text))] == ["1.0", ""]

        # series: month by month; May has no Party Day held, so no on-time rate
        for metric, points in {
            "training.person_hours": [0, 385],
            "party_day.on_time_rate": [None, 0.666667],
            "volunteer.hours": [0, 15.5],
        }.items():
            params = {"metric": metric, "from": "2026-05", "to": "2026-06"}
            r = await rollup.http.get("/v1/nodes/ph/series", params=params)
            assert [p["value"] for p in r.json()["points"]] == points, metric
            r = await rollup.http.get("/v1/nodes/ph/series", params=params | {"format": "csv"})
            got = [row["value"] for row in csv.DictReader(io.StringIO(r.text))]
            assert got == ["" if v is None else str(v) for v in points], metric

        # verify finds nothing; a rebuild from facts stores the same sums
        repo = rollup.adapters.repo
        pool = repo.pool
        assert await pg_admin.differences(pool) == []
        june = [Period.parse("2026-06")]
        before = await repo.sums(list(EXPECTED), june)
        assert before[("ph", "2026-06")]["training.person_hours"] == 385
        assert await pg_admin.rebuild(pool) > 0
        assert await pg_admin.differences(pool) == []
        assert await repo.sums(list(EXPECTED), june) == before

        # a row stored before the new sums were appended (shorter array) reads as 0 for them
        old_length = SLOTS.index("training.person_hours")
        old_row = [Decimal(0)] * old_length
        old_row[SLOTS.index("party_day.held")] = Decimal(1)
        old_row[SLOTS.index("training.participants")] = Decimal(7)
        await pool.execute(
            "INSERT INTO rollup.monthly (node, month, shard, v) VALUES ($1, $2, 99, $3)",
            B22,
            dt.date(2026, 3, 1),
            old_row,
        )
        await pool.execute(
            "INSERT INTO rollup.monthly (node, month, shard, v) VALUES ($1, $2, 98, $3)",
            B22,
            dt.date(2026, 3, 1),
            [Decimal(0)] * SLOTS.index("volunteer.hours") + [Decimal(2)],
        )
        old = await rollup.metrics(B22, "2026-03")
        assert (old["party_day.held"], old["training.participants"]) == (1, 7)
        assert (old["training.person_hours"], old["volunteer.hours"]) == (0, 2)
        assert old["outreach.good_rate"] is None
        added = await pool.fetchval(
            "SELECT rollup.vadd($1::numeric[], $2::numeric[])", [1, 2], [0, 0, 5]
        )
        assert added == [1, 2, 5]
