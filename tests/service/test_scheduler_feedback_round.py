"""The quarterly feedback round: stored, served (JSON, CSV, scoped by token), published."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from tests.service.scheduler_support import (
    RollupStub,
    end_offsets,
    read_since,
    serve_stub,
    serving,
    settings_for,
)
from tests.support.tree import build_city

from huibao_contracts import topics
from huibao_platform.auth import hash_token
from huibao_platform.clock import ManualClock

pytestmark = [pytest.mark.stack]
SH = ZoneInfo("Asia/Shanghai")
Q3 = "2030-Q3"


async def test_quarterly_feedback_for_every_unit(infra: Any) -> None:
    units = build_city("sf", counties=2, townships_per_county=2, branches_per_township=3)
    branches = [u["id"] for u in units if u["level"] == "branch"]
    stub = RollupStub(units)
    for month in ("2030-07", "2030-08", "2030-09"):
        for b in branches:
            stub.reports[(b, month)] = "on_time"
        stub.lessons[(branches[0], month)] = 2
    del stub.reports[("sf.c1.t1.b2", "2030-08")]  # missing in August
    stub.reports[("sf.c1.t1.b3", "2030-09")] = "late"
    for b in branches[:6]:
        stub.reports[(b, "2030-05")] = "on_time"
    url = await infra.fresh_database("sched_feedback")
    servers = infra.bootstrap_servers
    async with serve_stub(stub) as rollup_url:
        settings = settings_for(infra, url, rollup_url)
        async with serving(settings, ManualClock(dt.datetime(2030, 7, 1, tzinfo=SH))) as client:
            since = await end_offsets(servers, settings.topic(topics.FEEDBACK_ISSUED))
            r = await client.get("/v1/feedback/sf.c1.t1", params={"quarter": Q3})
            assert r.status_code == 404
            r = await client.put("/v1/clock", json={"now": "2030-10-10T00:00:00+08:00"})
            assert r.status_code == 200, r.text
            assert r.json()["pending"] == 0, r.json()
            steps = [(t["period"], t["step"]) for t in r.json()["transitions"]]
            assert steps[-2:] == [(Q3, "issued"), (Q3, "closed")] or steps[-4:-2] == [
                (Q3, "issued"),
                (Q3, "closed"),
            ]
            assert steps.index(("2030-09", "closed")) < steps.index((Q3, "issued"))

            r = await client.get("/v1/feedback/sf.c1.t1", params={"quarter": Q3})
            assert r.status_code == 200, r.text
            report = r.json()
            assert report["quarter"] == Q3
            assert report["previous_quarter"] == "2030-Q2"
            assert report["metrics"]["party_day.expected"] == 9
            assert report["metrics"]["party_day.held"] == 8
            assert report["change"]["party_day.held"] == 5  # three branches held it in May
            assert report["metrics"]["lesson.delivered"] == 6
            ranks = {x["metric"]: (x["rank"], x["of"]) for x in report["ranks"]}
            assert ranks["lesson.delivered"] == (1, 2)
            assert ranks["party_day.on_time"] == (2, 2)
            assert [c["id"] for c in report["children"]] == [
                "sf.c1.t1.b1",
                "sf.c1.t1.b2",
                "sf.c1.t1.b3",
            ]
            assert [(a["id"], a["missing"], a["late"]) for a in report["attention"]] == [
                ("sf.c1.t1.b2", 1, 0),
                ("sf.c1.t1.b3", 0, 1),
            ]

            r = await client.get("/v1/feedback/sf.c1.t1", params={"quarter": Q3, "format": "csv"})
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/csv")
            lines = r.text.splitlines()
            assert lines[0] == "section,unit,name,period,key,value,previous,change,rank,of"
            assert "child,sf.c1.t1.b2,清源县城关镇第二村党支部,2030-08,missing,1,,,," in lines

            r = await client.get("/v1/feedback/sf.c1.t1", params={"quarter": "2030-07"})
            assert r.status_code == 422
            assert r.json()["errors"][0]["field"] == "quarter"

            conn = await asyncpg.connect(url)
            try:
                await conn.execute(
                    "INSERT INTO auth.tokens (token_hash, unit) VALUES ($1, $2)",
                    hash_token("township-token"),
                    "sf.c1.t1",
                )
            finally:
                await conn.close()
            scoped = {"Authorization": "Bearer township-token"}
            for unit, status in (
                ("sf.c1.t1", 200),
                ("sf.c1.t1.b2", 200),
                ("sf.c1.t2", 403),
                ("sf.c1", 403),
                ("sf", 403),
            ):
                r = await client.get(f"/v1/feedback/{unit}", params={"quarter": Q3}, headers=scoped)
                assert r.status_code == status, (unit, r.text)

        published = await read_since(servers, since)
    ids = sorted(e["subject"] for e in published)
    assert ids == sorted(u["id"] for u in units)
    assert all(
        e["type"] == "huibao.feedback.issued.v1" and e["_key"] == e["subject"] for e in published
    )
