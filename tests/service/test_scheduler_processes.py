"""Three scheduler processes; the one holding a step's claim is SIGKILLed mid-step.

Each replica is a real `python -m huibao_scheduler` process on one PostgreSQL database and
the broker (its own topic prefix, so nothing else is read), on a manual clock, with
HUIBAO_STEP_DELAY_SECONDS so that the replica that claims a step sleeps inside the step's
transaction (logging `step_delayed` first). The test moves every clock to the upcoming
reminder, finds the sleeping replica by its log, kills it with SIGKILL, then moves the
survivors on to the close of the month. Every transition must be on `huibao.cycle.events`
exactly once and the cycle must end closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
from collections import Counter
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from tests.service.scheduler_support import RollupStub, serve_stub
from tests.support.tree import build_city

from huibao_contracts import topics
from huibao_stack.services import ServiceProcess
from huibao_stack.stack import EmbeddedStack

pytestmark = [pytest.mark.stack]
SH = ZoneInfo("Asia/Shanghai")
DELAY = 2.5
"""Seconds the claiming replica sleeps inside each step (HUIBAO_STEP_DELAY_SECONDS)."""


def at(year: int, month: int, day: int, hour: int = 0) -> str:
    return dt.datetime(year, month, day, hour, tzinfo=SH).isoformat()


async def move(procs: list[ServiceProcess], token: str, now: str) -> list[tuple[str, str]]:
    """PUT /v1/clock on every replica at once; the transitions they answered, together."""
    async with httpx.AsyncClient(timeout=60, headers={"Authorization": f"Bearer {token}"}) as c:
        answers = await asyncio.gather(
            *(c.put(f"{p.url}/v1/clock", json={"now": now}) for p in procs)
        )
    out = []
    for r in answers:
        assert r.status_code == 200, r.text
        assert r.json()["pending"] == 0, r.json()
        out += [(t["period"], t["step"]) for t in r.json()["transitions"]]
    return out


async def outbox_empty(url: str, within: float = 20.0) -> None:
    conn = await asyncpg.connect(url)
    try:
        async with asyncio.timeout(within):
            while await conn.fetchval(  # noqa: ASYNC110 (polling another process's table)
                "SELECT EXISTS (SELECT 1 FROM scheduler.outbox)"
            ):
                await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def steps(url: str) -> Counter[str]:
    """How many times each step name was recorded, all cycles together."""
    conn = await asyncpg.connect(url)
    try:
        return Counter(r["step"] for r in await conn.fetch("SELECT step FROM scheduler.steps"))
    finally:
        await conn.close()


async def sleeper(procs: list[ServiceProcess], step: str, within: float) -> ServiceProcess:
    """The replica whose log says it sleeps holding `step`'s claim."""
    async with asyncio.timeout(within):
        while True:
            for p in procs:
                for line in p.log_path.read_text(encoding="utf-8").splitlines():
                    if "step_delayed" not in line:
                        continue
                    with contextlib.suppress(orjson.JSONDecodeError):
                        entry = orjson.loads(line[line.index("{") :])
                        if (entry.get("event.action"), entry.get("huibao.step")) == (
                            "step_delayed",
                            step,
                        ):
                            return p
            await asyncio.sleep(0.05)


async def read_topic(servers: str, topic: str, idle: float = 2.0) -> list[dict[str, Any]]:
    """Every record of `topic` from the beginning (plain consumer: assign + seek, no group)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    await consumer.start()
    out: list[dict[str, Any]] = []
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer.topics()
            parts = consumer.partitions_for_topic(topic) or set()
        assert parts, f"no topic {topic}"
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while True:
            batch = await consumer.getmany(timeout_ms=int(idle * 1000), max_records=10_000)
            if not batch:
                return out
            out += [orjson.loads(r.value) for records in batch.values() for r in records]
    finally:
        await consumer.stop()


async def test_the_replica_holding_a_step_is_killed_and_the_step_runs_once(infra: Any) -> None:
    units = build_city("sp", counties=1, townships_per_county=2, branches_per_township=3)
    stub = RollupStub(units)
    url = await infra.fresh_database("sched_processes")
    prefix = f"schedproc{os.getpid()}."
    async with serve_stub(stub) as rollup_url:
        stack = EmbeddedStack(
            infra=infra,
            services=("scheduler",),
            clock="manual",
            clock_start=at(2029, 7, 1),
            service_env={
                "scheduler": {
                    "DATABASE_URL": url,
                    "HUIBAO_ROLLUP_URL": rollup_url,
                    "HUIBAO_TOPIC_PREFIX": prefix,
                    "HUIBAO_STEP_DELAY_SECONDS": str(DELAY),
                    "HUIBAO_TICK_SECONDS": "0.5",
                }
            },
            parallel_start=True,
        )
        try:
            await stack.start()
            await asyncio.gather(stack.add_replica("scheduler"), stack.add_replica("scheduler"))
            procs = stack.replicas("scheduler")
            token = stack.admin_token
            assert len(procs) == 3

            await move(procs, token, at(2029, 7, 1))  # the tickers may be running them already
            async with asyncio.timeout(20):
                while await steps(url) != {"opened": 2}:  # noqa: ASYNC110 (another process)
                    await asyncio.sleep(0.1)
            await outbox_empty(url)  # nothing in flight when the relay's replica may die

            trigger = at(2029, 7, 24, 9)
            moving = asyncio.create_task(move(procs, token, trigger))
            doomed = await sleeper(procs, "upcoming_reminder", within=10)
            await doomed.kill()  # SIGKILL while asleep inside the step transaction
            assert not doomed.running()
            with contextlib.suppress(httpx.HTTPError, AssertionError):
                await moving  # the doomed replica's answer never comes
            survivors = [p for p in procs if p is not doomed]
            assert await steps(url) == {"opened": 2}  # the killed claim left nothing behind

            for to in (trigger, at(2029, 7, 28, 9), at(2029, 7, 30), at(2029, 8, 8)):
                await move(survivors, token, to)
            async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as c:
                r = await c.get(f"{survivors[0].url}/v1/cycles")
            states = {(i["kind"], i["period"]): i["state"] for i in r.json()["items"]}
            assert states[("party_day", "2029-07")] == "closed"
            assert states[("party_day", "2029-08")] == "opened"
            await outbox_empty(url)
        finally:
            await stack.stop()

    events = await read_topic(infra.bootstrap_servers, prefix + topics.CYCLE_EVENTS)
    published = Counter((e["data"]["period"], e["data"]["step"]) for e in events)
    assert published == Counter(
        {
            ("2029-07", "opened"): 1,
            ("2029-Q3", "opened"): 1,
            ("2029-07", "upcoming_reminder"): 1,
            ("2029-07", "overdue_reminder"): 1,
            ("2029-07", "deadline_passed"): 1,
            ("2029-07", "escalated"): 1,
            ("2029-08", "opened"): 1,
            ("2029-07", "closed"): 1,
        }
    ), published
    assert len({e["id"] for e in events}) == len(events)
    closed = [e["data"] for e in events if e["data"]["step"] == "closed"]
    assert closed[0]["state"] == "closed"
