"""Exactly-once effect through restarts, an emptied topic, replicas and a changing tree."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from tests.service.rollup_support import Client, Harness, accepted, party_day
from tests.support.tree import build_city
from tests.support.waits import wait_until

from huibao_rollup.adapters import pg_admin
from huibao_rollup.adapters.postgres import Repository
from huibao_stack.infra import Infrastructure

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def harness(infra: Infrastructure, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    h = Harness(infra, request.node.name.replace("test_", "")[:40])
    await h.setup()
    try:
        yield h
    finally:
        await h.close()


def lessons(
    prefix: str, branches: list[str], start: int, count: int, audience: int = 3
) -> list[tuple[str, bytes]]:
    """`count` lessons spread over the branches, activity ids `{prefix}-{n}`."""
    return [
        accepted(
            "huibao.lesson.delivered.v1",
            branches[n % len(branches)],
            {
                "activity_id": f"{prefix}-{n}",
                "date": "2026-06-10",
                "audience": audience,
                "speaker_role": "expert",
                "topic": "t",
            },
            id=f"{prefix}-m{n}",
        )
        for n in range(start, start + count)
    ]


async def assert_rebuild_matches(harness: Harness) -> None:
    repo = Repository()
    await repo.connect(harness.database_url, 2)
    try:
        assert await pg_admin.differences(repo.pool) == []
    finally:
        await repo.close()


async def expect_lessons(rollup: Client, node: str, count: int, audience: int = 3) -> None:
    await rollup.wait_for(
        node, "2026-06", {"lesson.delivered": count, "lesson.audience": count * audience}, 60
    )


async def test_restart_resumes_without_double_counting(harness: Harness) -> None:
    city = build_city("rs", counties=2, townships_per_county=2, branches_per_township=5)
    branches = [u["id"] for u in city if u["level"] == "branch"]
    await harness.tree(city)
    await harness.events(lessons("rs", branches, 0, 2000))
    async with harness.replica() as rollup:
        await expect_lessons(rollup, "rs", 2000)
    # while it is down: more events, and every earlier one again
    await harness.events(lessons("rs", branches, 1000, 2000))
    async with harness.replica() as rollup:
        await expect_lessons(rollup, "rs", 3000)
        await asyncio.sleep(1)  # nothing more arrives
        await expect_lessons(rollup, "rs", 3000)
        await expect_lessons(rollup, "rs.c1", 1500)
    await assert_rebuild_matches(harness)


async def test_emptied_topic_is_read_again_without_double_counting(harness: Harness) -> None:
    city = build_city("et", counties=1, townships_per_county=2, branches_per_township=3)
    branches = [u["id"] for u in city if u["level"] == "branch"]
    await harness.tree(city)
    await harness.events(lessons("et", branches, 0, 300))
    async with harness.replica() as rollup:
        await expect_lessons(rollup, "et", 300)
    # the broker lost everything (as the in-memory broker does on restart)
    admin = AIOKafkaAdminClient(bootstrap_servers=harness.infra.bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics([harness.accepted_topic])
        await wait_until(lambda: _missing(admin, harness.accepted_topic), 20)
        await admin.create_topics([NewTopic(harness.accepted_topic, 6, 1)])
    finally:
        await admin.close()
    # the outbox resends some old records, then new ones follow
    await harness.events(lessons("et", branches, 250, 100))
    async with harness.replica() as rollup:
        await expect_lessons(rollup, "et", 350)
    await assert_rebuild_matches(harness)


async def _missing(admin: AIOKafkaAdminClient, topic: str) -> bool:
    return topic not in await admin.list_topics()


async def test_events_for_units_not_yet_in_the_tree_wait_for_it(harness: Harness) -> None:
    city = build_city("uw", counties=1, townships_per_county=1, branches_per_township=2)
    await harness.tree(city[:-1])
    await harness.events([party_day("uw.c1.t1.b1", "2026-06"), party_day("uw.c1.t1.b2", "2026-06")])
    async with harness.replica() as rollup:
        await rollup.wait_for("uw", "2026-06", {"orgunits.branches": 1})
        await asyncio.sleep(2)
        # the batch waits whole: nothing is applied, nothing is skipped
        assert (await rollup.metrics("uw", "2026-06"))["party_day.held"] == 0
        await harness.tree(city[-1:], first_seq=100)
        await rollup.wait_for("uw", "2026-06", {"party_day.held": 2, "party_day.expected": 2})


async def test_a_move_reattributes_facts_from_its_effective_date(harness: Harness) -> None:
    city = build_city("mv", counties=2, townships_per_county=1, branches_per_township=2)
    await harness.tree(city)
    await harness.events(
        [
            party_day("mv.c1.t1.b1", "2026-06"),
            party_day("mv.c1.t1.b1", "2026-07"),
            party_day("mv.c1.t1.b2", "2026-08"),
        ]
    )
    async with harness.replica() as rollup:
        await rollup.wait_for("mv.c1", "2026-Q3", {"party_day.held": 2})
        township = next(u for u in city if u["id"] == "mv.c1.t1")
        await harness.tree(
            [{**township, "parent": "mv.c2"}], first_seq=50, kind="move", effective="2026-07-01"
        )
        await rollup.wait_for("mv.c2", "2026-Q3", {"party_day.held": 2, "party_day.expected": 12})
        await rollup.wait_for("mv.c1", "2026-Q3", {"party_day.held": 0, "party_day.expected": 0})
        await rollup.wait_for("mv.c1", "2026-06", {"party_day.held": 1, "party_day.expected": 2})
        await rollup.wait_for("mv", "2026", {"party_day.held": 3})
        # an event arriving after the move goes straight to the new ancestors
        await harness.events([party_day("mv.c1.t1.b2", "2026-09")])
        await rollup.wait_for("mv.c2", "2026-09", {"party_day.held": 1})
        r = await rollup.http.get("/v1/nodes/mv.c1.t1")
        assert r.json()["path"] == ["mv", "mv.c2", "mv.c1.t1"]
    await assert_rebuild_matches(harness)


async def test_two_replicas_in_one_group_stay_exact(harness: Harness) -> None:
    city = build_city("tr", counties=3, townships_per_county=2, branches_per_township=4)
    branches = [u["id"] for u in city if u["level"] == "branch"]
    await harness.tree(city)
    rng = random.Random(7)
    batches = [lessons("tr", branches, i * 500, 500) for i in range(8)]
    async with harness.replica(batch_max_records=200) as first:
        await harness.events(batches[0])
        async with harness.replica(batch_max_records=200):
            for batch in batches[1:5]:
                await harness.events(batch + rng.sample(batch, 50))
                await asyncio.sleep(0.3)
        # the second replica left: the first takes its partitions over
        for batch in batches[5:]:
            await harness.events(batch + rng.sample(batches[0], 30))
        await expect_lessons(first, "tr", 4000)
        in_c2 = sum(1 for n in range(4000) if branches[n % len(branches)].startswith("tr.c2."))
        await expect_lessons(first, "tr.c2", in_c2)
    await assert_rebuild_matches(harness)


async def test_rebuild_and_verify_commands(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    from huibao_rollup.entrypoints.admin import rebuild, verify

    city = build_city("rb", counties=1, townships_per_county=1, branches_per_township=3)
    branches = [u["id"] for u in city if u["level"] == "branch"]
    await harness.tree(city)
    await harness.events(lessons("rb", branches, 0, 90))
    async with harness.replica() as rollup:
        await expect_lessons(rollup, "rb", 90)
    settings = harness.settings()
    assert await verify(settings) == 0
    assert await rebuild(settings) == 0
    assert await verify(settings) == 0
    out = capsys.readouterr().out
    assert "0 difference(s)" in out
    assert "rebuilt" in out
    async with harness.replica() as rollup:
        await expect_lessons(rollup, "rb.c1.t1", 90)
