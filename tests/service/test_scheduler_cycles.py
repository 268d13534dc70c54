"""The monthly Party Day cycle through the real HTTP entrypoint, PostgreSQL and broker.

The scheduler runs in-process on a manual clock; the rollup is a small real HTTP stand-in
(`scheduler_support.RollupStub`). Transitions and notifications are read back from Kafka.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from tests.service.scheduler_support import (
    RollupStub,
    end_offsets,
    read_since,
    serve_stub,
    serving,
    settings_for,
)
from tests.support.shanghai import at
from tests.support.tree import build_city

from huibao_contracts import topics
from huibao_platform.clock import ManualClock

pytestmark = [pytest.mark.stack]


async def move(client: Any, to: dt.datetime) -> list[tuple[str, str, str, bool]]:
    r = await client.put("/v1/clock", json={"now": to.isoformat()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["pending"] == 0, body
    return [(t["kind"], t["period"], t["step"], t["skipped"]) for t in body["transitions"]]


async def test_a_month_runs_every_step_in_order_with_its_notifications(infra: Any) -> None:
    units = build_city("sc1", counties=2, townships_per_county=2, branches_per_township=3)
    stub = RollupStub(units)
    branches = [u["id"] for u in units if u["level"] == "branch"]
    url = await infra.fresh_database("sched_cycles")
    servers = infra.bootstrap_servers
    async with serve_stub(stub) as rollup_url:
        settings = settings_for(infra, url, rollup_url)
        async with serving(settings, ManualClock(at(2026, 7, 1))) as client:
            since_cycles = await end_offsets(servers, settings.topic(topics.CYCLE_EVENTS))
            since_notes = await end_offsets(servers, settings.topic(topics.NOTIFICATIONS))
            assert await move(client, at(2026, 7, 1)) == [
                ("party_day", "2026-07", "opened", False),
                ("feedback", "2026-Q3", "opened", False),
            ]
            assert await move(client, at(2026, 7, 24, 9)) == [
                ("party_day", "2026-07", "upcoming_reminder", False)
            ]
            for b in branches[:8]:
                stub.reports[(b, "2026-07")] = "on_time"
            assert await move(client, at(2026, 7, 28, 9)) == [
                ("party_day", "2026-07", "overdue_reminder", False)
            ]
            stub.reports[(branches[8], "2026-07")] = "on_time"
            assert await move(client, at(2026, 7, 30)) == [
                ("party_day", "2026-07", "deadline_passed", False),
                ("party_day", "2026-07", "escalated", False),
            ]
            stub.reports[(branches[9], "2026-07")] = "late"
            assert await move(client, at(2026, 8, 8)) == [
                ("party_day", "2026-08", "opened", False),
                ("party_day", "2026-07", "closed", False),
            ]
            assert await move(client, at(2026, 8, 8, 1)) == []  # nothing runs twice

            cycles = (await client.get("/v1/cycles")).json()["items"]
            states = {(c["kind"], c["period"]): (c["state"], c["next_step"]) for c in cycles}
            assert states[("party_day", "2026-07")] == ("closed", None)
            assert states[("party_day", "2026-08")] == ("opened", "upcoming_reminder")
            assert states[("feedback", "2026-Q3")] == ("opened", "issued")

            metrics = (await client.get("/metrics")).text
            assert 'huibao_cycle_state{kind="party_day",state="opened"} 1.0' in metrics
            assert "huibao_notifications_total" in metrics

        cycle_events = await read_since(servers, since_cycles)
        notes = await read_since(servers, since_notes)

    steps = [(e["data"]["period"], e["data"]["step"], e["data"]["state"]) for e in cycle_events]
    assert steps == [
        ("2026-07", "opened", "opened"),
        ("2026-Q3", "opened", "opened"),
        ("2026-07", "upcoming_reminder", "reminded"),
        ("2026-07", "overdue_reminder", "overdue_reminded"),
        ("2026-07", "deadline_passed", "deadline_passed"),
        ("2026-07", "escalated", "escalated"),
        ("2026-08", "opened", "opened"),
        ("2026-07", "closed", "closed"),
    ]
    first = cycle_events[0]
    assert first["type"] == "huibao.cycle.transition.v1"
    assert first["_key"] == "party_day:2026-07"
    assert first["id"] == "party_day/2026-07/opened"

    by_kind: dict[str, list[dict[str, Any]]] = {}
    for e in notes:
        assert e["type"] == "huibao.notification.v1"
        assert e["_key"] == e["data"]["to"]
        by_kind.setdefault(e["data"]["kind"], []).append(e["data"])
    assert sorted(n["to"] for n in by_kind["party_day.upcoming"]) == sorted(branches)
    assert sorted(n["to"] for n in by_kind["party_day.not_reported"]) == sorted(branches[8:])
    escalated = {
        n["to"]: [m["id"] for m in n["details"]["missing"]] for n in by_kind["party_day.escalation"]
    }
    assert escalated == {"sc1.c2.t2": branches[9:]}
    assert len(by_kind["party_day.dispatch"]) == 3
    dispatch = {n["to"]: n["details"] for n in by_kind["party_day.dispatch"]}
    assert set(dispatch) == {"sc1", "sc1.c1", "sc1.c2"}
    assert dispatch["sc1"] == {
        "expected": 12,
        "held": 10,
        "on_time": 9,
        "late": 1,
        "missing": 2,
        "unexpected": 0,
        "attendance_rate": 0.9,
    }
    assert dispatch["sc1.c1"]["missing"] == 0
    assert "应开展12个" in next(
        n["text"] for n in by_kind["party_day.dispatch"] if n["to"] == "sc1"
    )


async def test_catch_up_after_downtime_skips_useless_reminders(infra: Any) -> None:
    units = build_city("sc2", counties=1, townships_per_county=1, branches_per_township=4)
    stub = RollupStub(units)
    url = await infra.fresh_database("sched_catchup")
    servers = infra.bootstrap_servers
    async with serve_stub(stub) as rollup_url:
        settings = settings_for(infra, url, rollup_url)
        async with serving(settings, ManualClock(at(2027, 7, 2))) as client:
            since_notes = await end_offsets(servers, settings.topic(topics.NOTIFICATIONS))
            assert await move(client, at(2027, 7, 2)) == [
                ("party_day", "2027-07", "opened", False),
                ("feedback", "2027-Q3", "opened", False),
            ]
        # Down from July 2 to August 3; a new process with the same database catches up.
        stub.reports[("sc2.c1.t1.b1", "2027-07")] = "late"
        async with serving(settings, ManualClock(at(2027, 8, 3))) as client:
            assert await move(client, at(2027, 8, 3)) == [
                ("party_day", "2027-07", "upcoming_reminder", True),
                ("party_day", "2027-07", "overdue_reminder", True),
                ("party_day", "2027-07", "deadline_passed", False),
                ("party_day", "2027-07", "escalated", False),
                ("party_day", "2027-08", "opened", False),
            ]
            cycles = (await client.get("/v1/cycles")).json()["items"]
            assert {(c["period"], c["state"]) for c in cycles} >= {
                ("2027-07", "escalated"),
                ("2027-08", "opened"),
            }
        notes = await read_since(servers, since_notes)
    mine = [n["data"] for n in notes if n["data"]["period"].startswith("2027")]
    assert [n["kind"] for n in mine] == ["party_day.escalation"]
    assert mine[0]["details"]["count"] == 3


async def test_manual_run_and_admin_only_routes(infra: Any) -> None:
    stub = RollupStub(
        build_city("sc3", counties=1, townships_per_county=1, branches_per_township=2)
    )
    url = await infra.fresh_database("sched_manual")
    async with serve_stub(stub) as rollup_url:
        settings = settings_for(infra, url, rollup_url)
        async with serving(settings, ManualClock(at(2028, 5, 10))) as client:
            r = await client.post("/v1/cycles/party_day/2028-05/run")
            assert r.status_code == 200, r.text
            assert r.json()["transition"]["step"] == "opened"
            r = await client.post("/v1/cycles/party_day/2028-05/run")
            assert r.json()["transition"]["step"] == "upcoming_reminder"
            assert r.json()["transition"]["skipped"] is False
            assert (await client.post("/v1/cycles/party_day/2028-Q2/run")).status_code == 422
            assert (await client.post("/v1/cycles/weekly/2028-05/run")).status_code == 422
            for _ in range(4):
                assert (await client.post("/v1/cycles/party_day/2028-05/run")).status_code == 200
            r = await client.post("/v1/cycles/party_day/2028-05/run")
            assert r.status_code == 409
            assert r.json()["errors"][0]["reason"] == "conflict"
            r = await client.put("/v1/clock", json={"now": "2028-05-01T00:00:00+08:00"})
            assert r.status_code == 422
            assert r.json()["errors"][0]["field"] == "now"
            anon = await client.get("/v1/cycles", headers={"Authorization": ""})
            assert anon.status_code == 401
            ready = await client.get("/health/ready")
            assert ready.status_code == 200, ready.text
