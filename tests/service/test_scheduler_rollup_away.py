"""A step run by hand while the rollup is away answers 503 with Retry-After, not a 500, and
writes nothing: the same step runs once the rollup is back."""

from __future__ import annotations

from typing import Any

import pytest
from tests.service.scheduler_support import RollupStub, serve_stub, serving, settings_for
from tests.support.shanghai import at
from tests.support.tree import build_city

from huibao_platform.clock import ManualClock
from huibao_stack.processes import free_port

pytestmark = [pytest.mark.stack]

RUN = "/v1/cycles/party_day/2026-07/run"


async def test_running_a_step_while_the_rollup_is_away_is_a_503(infra: Any) -> None:
    url = await infra.fresh_database("sched_rollup_away")
    away = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = settings_for(infra, url, away)
    async with serving(settings, ManualClock(at(2026, 7, 1))) as client:
        opened = await client.post(RUN)  # opening reads nothing from the rollup
        assert opened.status_code == 200, opened.text
        assert opened.json()["transition"]["step"] == "opened"
        r = await client.post(RUN)  # the upcoming reminder lists the rollup's branches
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "1"
        (error,) = r.json()["errors"]
        assert (error["field"], error["reason"]) == ("service", "unavailable")
        assert "rollup" in error["message"]
        cycles = (await client.get("/v1/cycles")).json()["items"]
        state = {(c["kind"], c["period"]): (c["state"], c["next_step"]) for c in cycles}
        assert state[("party_day", "2026-07")] == ("opened", "upcoming_reminder")

    units = build_city("sra", counties=1, townships_per_county=1, branches_per_township=2)
    async with serve_stub(RollupStub(units)) as rollup_url:
        back = settings.model_copy(update={"rollup_url": rollup_url})
        async with serving(back, ManualClock(at(2026, 7, 1))) as client:
            r = await client.post(RUN)
            assert r.status_code == 200, r.text
            assert r.json()["transition"]["step"] == "upcoming_reminder"
