"""Exactly one transition per step with three replicas, one killed at the moment of a trigger.

Three scheduler apps share one PostgreSQL database and the broker, each with its own manual
clock. Replica A is killed inside the step transaction (after claiming, before commit): the
step must stay unclaimed and run exactly once on B or C.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from huibao_scheduler.domain.plan import PlannedStep, Step

pytestmark = [pytest.mark.stack]


async def move_all(clients: list[Any], to: dt.datetime) -> list[tuple[str, str]]:
    """Move every replica's clock at once; the transitions they answered, all together."""
    answers = await asyncio.gather(
        *(c.put("/v1/clock", json={"now": to.isoformat()}) for c in clients)
    )
    out = []
    for r in answers:
        assert r.status_code == 200, r.text
        out += [(t["period"], t["step"]) for t in r.json()["transitions"]]
    return out


async def test_three_replicas_run_each_step_once_even_when_the_leader_dies(infra: Any) -> None:
    units = build_city("sr", counties=1, townships_per_county=2, branches_per_township=3)
    branches = [u["id"] for u in units if u["level"] == "branch"]
    stub = RollupStub(units)
    url = await infra.fresh_database("sched_replicas")
    servers = infra.bootstrap_servers
    entered = asyncio.Event()

    async def die_at_upcoming_reminder(step: PlannedStep) -> None:
        if step.step is Step.UPCOMING_REMINDER:
            entered.set()
            await asyncio.Event().wait()  # hangs inside the transaction until killed

    async with serve_stub(stub) as rollup_url, contextlib.AsyncExitStack() as stack:
        settings = settings_for(infra, url, rollup_url)
        start = at(2029, 7, 1)
        a = await stack.enter_async_context(
            serving(settings, ManualClock(start), replica="A", on_claimed=die_at_upcoming_reminder)
        )
        since_cycles = await end_offsets(servers, settings.topic(topics.CYCLE_EVENTS))
        since_notes = await end_offsets(servers, settings.topic(topics.NOTIFICATIONS))
        b = await stack.enter_async_context(serving(settings, ManualClock(start), replica="B"))
        c = await stack.enter_async_context(serving(settings, ManualClock(start), replica="C"))

        ran = await move_all([a, b, c], at(2029, 7, 1))
        assert sorted(ran) == [("2029-07", "opened"), ("2029-Q3", "opened")]

        # A reaches the upcoming reminder first and dies with its transaction open.
        trigger = {"now": at(2029, 7, 24, 9).isoformat()}
        doomed = asyncio.create_task(a.put("/v1/clock", json=trigger))
        await asyncio.wait_for(entered.wait(), 10)
        doomed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await doomed
        conn = await asyncpg.connect(url)
        try:
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM scheduler.steps WHERE step = 'upcoming_reminder'"
                )
                == 0
            )
        finally:
            await conn.close()

        ran = await move_all([b, c], at(2029, 7, 24, 9))
        assert ran == [("2029-07", "upcoming_reminder")]
        for to in (at(2029, 7, 28, 9), at(2029, 7, 30), at(2029, 8, 8)):
            ran += await move_all([b, c], to)
        assert Counter(ran) == Counter(
            {
                ("2029-07", "upcoming_reminder"): 1,
                ("2029-07", "overdue_reminder"): 1,
                ("2029-07", "deadline_passed"): 1,
                ("2029-07", "escalated"): 1,
                ("2029-08", "opened"): 1,
                ("2029-07", "closed"): 1,
            }
        )

        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(
                "SELECT step, replica FROM scheduler.steps WHERE period = '2029-07'"
            )
        finally:
            await conn.close()
        by_step = {r["step"]: r["replica"] for r in rows}
        assert len(rows) == 6
        assert by_step["opened"] in {"A", "B", "C"}
        assert by_step["upcoming_reminder"] in {"B", "C"}

    cycle_events = [e["data"] for e in await read_since(servers, since_cycles)]
    published = Counter((e["period"], e["step"]) for e in cycle_events)
    assert all(n == 1 for n in published.values()), published
    assert len(published) == 8
    notes = [e["data"] for e in await read_since(servers, since_notes)]
    upcoming = Counter(n["to"] for n in notes if n["kind"] == "party_day.upcoming")
    assert upcoming == Counter(branches)
