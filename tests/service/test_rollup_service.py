"""The rollup service in-process on the real broker and PostgreSQL: numbers via the API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from tests.service.rollup_support import Harness, accepted, party_day
from tests.support.tree import build_city

from huibao_stack.infra import Infrastructure

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

ON_TIME = "2026-06-27T10:00:00+08:00"
LATE = "2026-06-30T00:00:01+08:00"


@pytest_asyncio.fixture(loop_scope="session")
async def harness(infra: Infrastructure, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    h = Harness(infra, request.node.name.replace("test_", "")[:40])
    await h.setup()
    try:
        yield h
    finally:
        await h.close()


async def test_summary_at_every_level_and_completeness(harness: Harness) -> None:
    city = build_city("sk", counties=2, townships_per_county=2, branches_per_township=3)
    await harness.tree(city)
    await harness.events(
        [
            party_day("sk.c1.t1.b1", "2026-06", attendees=20, members=25, time=ON_TIME),
            party_day("sk.c1.t1.b2", "2026-06", attendees=10, members=20, time=LATE),
            party_day("sk.c2.t2.b3", "2026-06", attendees=5, members=10, time=ON_TIME),
            accepted(
                "huibao.lesson.delivered.v1",
                "sk.c1.t1",
                {
                    "activity_id": "ls-1",
                    "date": "2026-06-10",
                    "speaker_role": "expert",
                    "topic": "党章",
                    "audience": 40,
                    "duration_minutes": 50,
                },
            ),
            accepted(
                "huibao.training.held.v1",
                "sk.c2",
                {
                    "activity_id": "tr-1",
                    "date": "2026-05-03",
                    "target_group": "secretaries",
                    "participants": 30,
                    "hours": 1.5,
                },
            ),
        ]
    )
    async with harness.replica() as rollup:
        city_m = await rollup.wait_for("sk", "2026-06", {"party_day.held": 3})
        assert city_m["party_day.expected"] == 12
        assert city_m["party_day.on_time"] == 2
        assert city_m["party_day.late"] == 1
        assert city_m["party_day.attendees"] == 35
        assert city_m["party_day.attendance_rate"] == pytest.approx(35 / 55)
        assert city_m["lesson.delivered"] == 1
        assert city_m["lesson.audience"] == 40
        assert city_m["orgunits.branches"] == 12
        assert city_m["feedback.resolution_rate"] is None
        await rollup.wait_for(
            "sk",
            "2026-Q2",
            {
                "party_day.held": 3,
                "training.sessions": 1,
                "training.participants": 30,
                "party_day.expected": 36,
            },
        )
        await rollup.wait_for("sk", "2026", {"party_day.held": 3, "lesson.delivered": 1})
        t1 = await rollup.metrics("sk.c1.t1", "2026-06")
        assert (t1["party_day.held"], t1["party_day.expected"], t1["lesson.delivered"]) == (2, 3, 1)
        c2 = await rollup.metrics("sk.c2", "2026-06")
        assert (c2["party_day.held"], c2["party_day.on_time"], c2["training.sessions"]) == (1, 1, 0)
        b1 = await rollup.metrics("sk.c1.t1.b1", "2026-06")
        assert (b1["party_day.held"], b1["party_day.expected"], b1["members.total"]) == (1, 1, 20)

        r = await rollup.http.get(
            "/v1/nodes/sk.c1/completeness",
            params={"cycle": "party_day", "period": "2026-06", "limit": 2},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["expected"], body["held"], body["on_time"], body["late"], body["missing"]) == (
            6,
            2,
            1,
            1,
            4,
        )
        assert body["missing_units"]["total"] == 4
        assert [u["id"] for u in body["missing_units"]["items"]] == ["sk.c1.t1.b3", "sk.c1.t2.b1"]
        assert body["missing_units"]["items"][0]["path"] == [
            "sk",
            "sk.c1",
            "sk.c1.t1",
            "sk.c1.t1.b3",
        ]
        assert [u["id"] for u in body["late_units"]["items"]] == ["sk.c1.t1.b2"]
        assert body["deadline"].startswith("2026-06-30T00:00:00")

        r = await rollup.http.get(
            "/v1/nodes/sk/children", params={"period": "2026-06", "metric": "party_day.held"}
        )
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert [(i["id"], i["value"], i["rank"]) for i in items] == [
            ("sk.c1", 2, 1),
            ("sk.c2", 1, 2),
        ]
        r = await rollup.http.get("/v1/nodes/sk.c1")
        assert r.json()["children"] == ["sk.c1.t1", "sk.c1.t2"]
        assert r.json()["path"] == ["sk", "sk.c1"]
        r = await rollup.http.get("/v1/roots")
        assert {"id": "sk", "name": "示范市sk", "level": "city"} in r.json()["items"]


async def test_duplicates_and_corrections_change_only_by_difference(harness: Harness) -> None:
    await harness.tree(
        build_city("dc", counties=1, townships_per_county=1, branches_per_township=2)
    )
    first = party_day("dc.c1.t1.b1", "2026-06", attendees=10, time=ON_TIME, id="m1")
    await harness.events([first, first, party_day("dc.c1.t1.b2", "2026-06", attendees=7)])
    async with harness.replica() as rollup:
        await rollup.wait_for("dc", "2026-06", {"party_day.held": 2, "party_day.attendees": 17})
        # the same message again, and an older revision, change nothing
        await harness.events([first, party_day("dc.c1.t1.b1", "2026-06", attendees=1, id="m0")])
        # a correction replaces, a retraction removes
        await harness.events(
            [
                party_day("dc.c1.t1.b1", "2026-06", attendees=12, revision=2, time=LATE),
                party_day("dc.c1.t1.b2", "2026-06", attendees=7, revision=3, retracted=True),
            ]
        )
        m = await rollup.wait_for("dc", "2026-06", {"party_day.held": 1, "party_day.attendees": 12})
        # on time is decided by the first revision's instant, not the correction's
        assert (m["party_day.on_time"], m["party_day.late"]) == (1, 0)
        q = await rollup.metrics("dc.c1.t1", "2026-Q2")
        assert (q["party_day.held"], q["party_day.attendees"]) == (1, 12)


async def test_errors_and_scopes(harness: Harness) -> None:
    await harness.tree(
        build_city("er", counties=2, townships_per_county=1, branches_per_township=1)
    )
    async with harness.replica() as rollup:
        await rollup.wait_for("er", "2026-06", {"orgunits.branches": 2})
        http = rollup.http
        r = await http.get("/v1/nodes/nope/summary", params={"period": "2026-06"})
        assert r.status_code == 404
        r = await http.get("/v1/nodes/er/summary", params={"period": "2026-13"})
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "period"
        r = await http.get("/v1/nodes/er/completeness", params={"period": "2026-Q2"})
        assert r.status_code == 422
        r = await http.get(
            "/v1/nodes/er/summary",
            params={"period": "2026-06"},
            headers={"Authorization": "Bearer wrong"},
        )
        assert r.status_code == 401
        token = await rollup.adapters.tokens.create("er.c1", "test")
        scoped = {"Authorization": f"Bearer {token}"}
        for path, params in [
            ("/v1/nodes/er/summary", {"period": "2026-06"}),
            ("/v1/nodes/er.c2/summary", {"period": "2026-06"}),
            ("/v1/nodes/er", {}),
            ("/v1/nodes/er/children", {"period": "2026-06"}),
            ("/v1/nodes/er/completeness", {"period": "2026-06"}),
            (
                "/v1/nodes/er/series",
                {"metric": "party_day.held", "from": "2026-01", "to": "2026-06"},
            ),
        ]:
            r = await http.get(path, params=params, headers=scoped)
            assert r.status_code == 403, (path, r.text)
        r = await http.get(
            "/v1/nodes/er.c1.t1/summary", params={"period": "2026-06"}, headers=scoped
        )
        assert r.status_code == 200
        r = await http.get("/v1/roots", headers=scoped)
        assert [i["id"] for i in r.json()["items"]] == ["er.c1"]
        r = await http.get("/v1/nodes/er/children", params={"period": "2026-06", "format": "csv"})
        assert r.headers["content-type"].startswith("text/csv")
        assert r.text.splitlines()[0] == "rank,id,name,level,value"
        r = await http.get("/health/ready")
        assert r.status_code == 200, r.text


async def test_a_query_only_replica_serves_what_the_applier_applied(harness: Harness) -> None:
    await harness.tree(
        build_city("qo", counties=1, townships_per_county=1, branches_per_township=2)
    )
    async with harness.replica(consume_events=False) as reader:
        await harness.events([party_day("qo.c1.t1.b1", "2026-06", attendees=9, time=ON_TIME)])
        await asyncio.sleep(2)
        m = await reader.metrics("qo", "2026-06")
        assert m["party_day.held"] == 0, "a query-only replica must not apply events"
        async with harness.replica() as applier:
            await applier.wait_for("qo", "2026-06", {"party_day.held": 1})
        m = await reader.wait_for("qo", "2026-06", {"party_day.held": 1, "party_day.attendees": 9})
        assert m["party_day.expected"] == 2
