"""Kept answers of the rollup's query API, on the real broker and PostgreSQL: the fast path
sends exactly what the routes send, never decides access, and a kept answer goes stale as
soon as a batch or a tree change moves the data under it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from tests.service.rollup_support import Harness, party_day
from tests.support.tree import build_city
from tests.support.waits import wait_until

from huibao_stack.infra import Infrastructure

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

ON_TIME = "2026-06-27T10:00:00+08:00"


@pytest_asyncio.fixture(loop_scope="session")
async def harness(infra: Infrastructure, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    h = Harness(infra, request.node.name.replace("test_", "")[:40])
    await h.setup()
    try:
        yield h
    finally:
        await h.close()


async def test_kept_answers_are_the_routes_answers_and_never_decide_access(
    harness: Harness,
) -> None:
    await harness.tree(
        build_city("ka", counties=2, townships_per_county=1, branches_per_township=2)
    )
    await harness.events([party_day("ka.c1.t1.b1", "2026-06", attendees=7, time=ON_TIME)])
    async with harness.replica() as rollup:
        await rollup.wait_for("ka", "2026-06", {"party_day.held": 1, "orgunits.branches": 4})
        http, answers = rollup.http, rollup.app.state.rollup.answers
        requests = [
            ("/v1/nodes/ka/summary", {"period": "2026-06"}),
            ("/v1/nodes/ka/summary", {"period": "2026-Q2"}),
            ("/v1/nodes/ka/children", {"period": "2026-06"}),
            ("/v1/nodes/ka.c1/children", {"period": "2026-06", "metric": "party_day.attendees"}),
            ("/v1/nodes/ka/children", {"period": "2026-06", "limit": "1", "offset": "1"}),
        ]
        for path, params in requests:
            answers.clear()
            # a parameter given twice is not plain: the route answers (and keeps the answer)
            routed = await http.get(path, params=[*params.items(), ("period", params["period"])])
            answers.clear()
            fast = await http.get(path, params=params)  # the fast path builds it
            hits = answers.hits
            kept = await http.get(path, params=params)
            assert answers.hits == hits + 1, (path, params)  # served as kept
            assert routed.status_code == fast.status_code == kept.status_code == 200
            assert routed.content == fast.content == kept.content, (path, params)
            for r in (fast, kept):
                assert r.headers["content-type"] == routed.headers["content-type"]
                assert r.headers["content-length"] == routed.headers["content-length"]
        token = await rollup.adapters.tokens.create("ka.c1", "test")
        scoped = {"Authorization": f"Bearer {token}"}
        r = await http.get("/v1/nodes/ka/summary", params={"period": "2026-06"}, headers=scoped)
        assert r.status_code == 403  # kept for the admin, still out of this token's scope
        r = await http.get("/v1/nodes/ka.c1/children", params={"period": "2026-06"}, headers=scoped)
        assert r.status_code == 200
        for headers in ({"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
            r = await http.get(
                "/v1/nodes/ka/summary", params={"period": "2026-06"}, headers=headers
            )
            assert r.status_code == 401
        r = await http.get("/v1/nodes/ka/summary", params={"period": "2026-06", "format": "csv"})
        assert r.headers["content-type"].startswith("text/csv")
        r = await http.get(
            "/v1/nodes/ka/children", params={"period": "2026-06"}, headers={"Accept": "text/csv"}
        )
        assert r.headers["content-type"].startswith("text/csv")
        for params in (
            {"period": "2026-06", "format": "xml"},
            {"period": "2026-06", "limit": "0"},
            {"period": "2026-06", "offset": "-1"},
            {"period": "2026-06", "metric": "no.such"},
        ):
            r = await http.get("/v1/nodes/ka/children", params=params)
            assert r.status_code == 422, params


async def test_a_kept_answer_goes_stale_with_the_next_batch_and_tree_change(
    harness: Harness,
) -> None:
    city = build_city("ks", counties=2, townships_per_county=1, branches_per_township=2)
    await harness.tree(city)
    async with harness.replica() as rollup:
        await rollup.wait_for("ks", "2026-06", {"orgunits.branches": 4})
        await rollup.metrics("ks.c2", "2026-06")
        await rollup.metrics("ks.c2", "2026-06")  # kept now
        await harness.events([party_day("ks.c2.t1.b1", "2026-06", attendees=3, time=ON_TIME)])
        await rollup.wait_for("ks.c2", "2026-06", {"party_day.held": 1}, wait_seconds=15)
        # a township moves to the other county: counts follow at once
        town = next(u for u in city if u["id"] == "ks.c1.t1")
        await harness.tree([{**town, "parent": "ks.c2"}], first_seq=1000, kind="move")

        async def moved() -> bool:
            m = await rollup.metrics("ks.c2", "2026-06")
            return bool(m["orgunits.branches"] == 4)

        await wait_until(moved, timeout=15)
        assert (await rollup.metrics("ks.c1", "2026-06"))["orgunits.branches"] == 0
