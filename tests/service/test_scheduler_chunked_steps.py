"""The per-unit steps issue in chunks before they commit: a rerun after a failure half-way
through the walk issues nothing twice.

The rollup stand-in fails after a few listings, once some chunks (of 2) are written and
before the walk ends: the step stays unclaimed with part of its notifications or reports
already in the outbox. The next run resumes it; every branch gets one reminder and every
unit one report, on the topics and in PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

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
from tests.support.shanghai import at
from tests.support.tree import build_city

from huibao_contracts import topics
from huibao_platform.clock import ManualClock

pytestmark = [pytest.mark.stack]


async def put_clock(client: Any, to: dt.datetime) -> dict[str, Any]:
    r = await client.put("/v1/clock", json={"now": to.isoformat()})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def count(url: str, sql: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def step_notifications(url: str, step: str) -> int | None:
    """The notification count recorded with a step, None while it has not run."""
    conn = await asyncpg.connect(url)
    try:
        found = await conn.fetchval(
            "SELECT notifications FROM scheduler.steps WHERE step = $1", step
        )
    finally:
        await conn.close()
    return None if found is None else int(found)


async def test_upcoming_reminder_rerun_after_a_failure_mid_walk_notifies_each_branch_once(
    infra: Any,
) -> None:
    units = build_city("sk1", counties=2, townships_per_county=2, branches_per_township=3)
    branches = [u["id"] for u in units if u["level"] == "branch"]
    stub = RollupStub(units)
    url = await infra.fresh_database("sched_chunked_upcoming")
    servers = infra.bootstrap_servers
    async with serve_stub(stub) as rollup_url:
        settings = settings_for(infra, url, rollup_url, issue_chunk=2, walk_workers=1)
        async with serving(settings, ManualClock(at(2026, 7, 1))) as client:
            since = await end_offsets(servers, settings.topic(topics.NOTIFICATIONS))
            assert (await put_clock(client, at(2026, 7, 1)))["pending"] == 0
            # roots, the city's, the first county's and two townships' listings, then 503s
            stub.fail_after = 5
            body = await put_clock(client, at(2026, 7, 24, 9))
            assert body["pending"] == 1, body
            assert "rollup" in body["error"], body
            assert body["transitions"] == []
            notified = await count(url, "SELECT count(*) FROM scheduler.notified")
            assert 0 < notified < len(branches)
            assert await step_notifications(url, "upcoming_reminder") is None

            stub.fail_after = None
            body = await put_clock(client, at(2026, 7, 24, 9))
            assert [t["step"] for t in body["transitions"]] == ["upcoming_reminder"], body
            assert await step_notifications(url, "upcoming_reminder") == len(branches)
            assert await count(url, "SELECT count(*) FROM scheduler.notified") == 0

    notes = [e for e in await read_since(servers, since) if e["data"]["kind"].endswith("upcoming")]
    assert Counter(e["data"]["to"] for e in notes) == Counter(branches)  # each exactly once
    assert len({e["id"] for e in notes}) == len(branches)


async def test_feedback_round_rerun_after_a_failure_mid_walk_issues_each_report_once(
    infra: Any,
) -> None:
    units = build_city("sk2", counties=2, townships_per_county=2, branches_per_township=3)
    stub = RollupStub(units)
    for month in ("2030-07", "2030-08", "2030-09"):
        for u in units:
            if u["level"] == "branch":
                stub.reports[(u["id"], month)] = "on_time"
    url = await infra.fresh_database("sched_chunked_feedback")
    servers = infra.bootstrap_servers
    async with serve_stub(stub) as rollup_url:
        settings = settings_for(
            infra, url, rollup_url, issue_chunk=2, walk_workers=1, first_period="2030-09"
        )
        async with serving(settings, ManualClock(at(2030, 9, 1))) as client:
            assert (await put_clock(client, at(2030, 10, 9)))["pending"] == 0
            since_reports = await end_offsets(servers, settings.topic(topics.FEEDBACK_ISSUED))
            since_notes = await end_offsets(servers, settings.topic(topics.NOTIFICATIONS))
            # roots + 5 summaries, the city's and the first county's 5 listings each, then 503s
            stub.fail_after = 1 + 5 + 5 + 5 + 5
            body = await put_clock(client, at(2030, 10, 10))
            assert body["pending"] == 2, body
            assert "rollup" in body["error"], body
            stored = await count(url, "SELECT count(*) FROM scheduler.feedback")
            assert 0 < stored < len(units)
            notified = await count(url, "SELECT count(*) FROM scheduler.notified")

            stub.fail_after = None
            body = await put_clock(client, at(2030, 10, 10))
            assert [t["step"] for t in body["transitions"]] == ["issued", "closed"], body
            assert await count(url, "SELECT count(*) FROM scheduler.feedback") == len(units)
            non_branches = [u["id"] for u in units if u["level"] != "branch"]
            assert await step_notifications(url, "issued") == len(non_branches)
            assert notified < len(non_branches)

    reports = await read_since(servers, since_reports)
    assert Counter(e["subject"] for e in reports) == Counter(u["id"] for u in units)
    notes = [e["data"] for e in await read_since(servers, since_notes)]
    assert Counter(n["to"] for n in notes if n["kind"] == "feedback.issued") == Counter(
        non_branches
    )
