"""An emptied broker loses nothing, whatever the rollup's lag (docs/architecture.md, "An
emptied broker").

On a stack of its own (reporting and rollup as processes, embedded PostgreSQL and Tansu):
the rollup applies a first part, then stops; reporting accepts events over HTTP and Kafka
(new activities, corrections, exact duplicates) and a registry change while the rollup is
away, and publishes them; the broker restarts empty; the rollup starts again. Every
accepted event must count, exactly once, against a tally kept here from what was sent.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from tests.fault.scenario import keep_logs
from tests.support.events import cloudevent
from tests.support.tree import build_city
from tests.support.waits import wait_until

from huibao_stack.stack import EmbeddedStack

pytestmark = [pytest.mark.stack, pytest.mark.timeout(240)]

VOLUNTEER = "huibao.volunteer.served.v1"
SUBMITTED = "huibao.activity.submitted"
ROLLUP_ENV = {"HUIBAO_SESSION_TIMEOUT_MS": "6000", "HUIBAO_HEARTBEAT_INTERVAL_MS": "500"}


class Tally:
    """What the rollup must show: latest `served` per activity, per unit."""

    def __init__(self) -> None:
        self.latest: dict[str, tuple[str, int, int]] = {}  # activity → (unit, revision, served)
        self.sent: list[dict[str, Any]] = []
        self.counter = itertools.count()
        self.rng = random.Random(13)

    def new(self, unit: str) -> dict[str, Any]:
        aid = f"bl-{next(self.counter)}"
        return self._event(aid, unit, 1)

    def correct(self) -> dict[str, Any]:
        aid = self.rng.choice(sorted(self.latest))
        unit, revision, _ = self.latest[aid]
        return self._event(aid, unit, revision + 1)

    def duplicate(self) -> dict[str, Any]:
        return self.rng.choice(self.sent)

    def _event(self, aid: str, unit: str, revision: int) -> dict[str, Any]:
        served = self.rng.randint(1, 500)
        data = {
            "activity_id": aid,
            "revision": revision,
            "date": f"2025-{self.rng.randint(1, 12):02d}-10",
            "volunteers": 3,
            "served": served,
        }
        event = cloudevent(VOLUNTEER, unit, data, id=f"{aid}-r{revision}", source="/broker-test")
        event["time"] = "2025-12-20T10:00:00+08:00"
        self.latest[aid] = (unit, revision, served)
        self.sent.append(event)
        return event

    def mix(self, units: list[str], n: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(n):
            roll = self.rng.random()
            if roll < 0.1 and self.sent:
                out.append(self.duplicate())
            elif roll < 0.2 and self.latest:
                out.append(self.correct())
            else:
                out.append(self.new(self.rng.choice(units)))
        return out

    def served_under(self, prefix: str) -> int:
        return sum(
            s for u, _, s in self.latest.values() if u == prefix or u.startswith(prefix + ".")
        )


async def test_an_emptied_broker_loses_nothing_the_lagging_rollup_had_not_read() -> None:
    units = build_city("bl", counties=2, townships_per_county=2, branches_per_township=5)
    branches = [u["id"] for u in units if u["level"] == "branch"]
    new_branch: dict[str, Any] = {
        "id": "bl.c1.t1.b99",
        "name": "迟到的村党支部",
        "level": "branch",
        "parent": "bl.c1.t1",
        "members": 12,
    }
    tally = Tally()
    stack = EmbeddedStack(
        services=("reporting", "rollup"),
        service_env={"rollup": ROLLUP_ENV},
        parallel_start=True,
    )
    await stack.start()
    headers = {"Authorization": f"Bearer {stack.admin_token}"}
    rep, rol = stack.urls["reporting"], stack.urls["rollup"]
    producer: AIOKafkaProducer | None = None
    try:
        async with httpx.AsyncClient(headers=headers, timeout=30) as client:
            r = await client.put(f"{rep}/v1/orgunits", json=units)
            assert r.status_code == 200, r.text

            async def served(node: str) -> int:
                r = await client.get(f"{rol}/v1/nodes/{node}/summary", params={"period": "2025"})
                return int(r.json()["metrics"]["volunteer.served"]) if r.status_code == 200 else -1

            # a first part, applied: the rollup's stored positions are past the start
            await post(client, rep, tally.mix(branches, 60))
            await wait_until(
                lambda: _equal(served, "bl", tally.served_under("bl")), 60, 0.3, "first part"
            )
            await stack.service("rollup").stop()

            # while the rollup is away: HTTP and Kafka intake, and a registry change
            r = await client.put(f"{rep}/v1/orgunits", json=[new_branch])
            assert r.status_code == 200, r.text
            await post(client, rep, tally.mix([*branches, new_branch["id"]], 150))
            producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers)
            await producer.start()
            for event in tally.mix([*branches, new_branch["id"]], 150):
                await producer.send_and_wait(
                    SUBMITTED, orjson.dumps(event), key=event["subject"].encode()
                )
            await producer.stop()
            producer = None
            await post(client, rep, [tally.new(new_branch["id"])])
            seen_ids = {(e["source"], e["id"]) for e in tally.sent}
            await wait_until(
                lambda: _all_published(stack.database_url, len(seen_ids)),
                60,
                0.3,
                "reporting took in and published every event",
            )

            assert stack.infra.broker is not None
            await stack.infra.broker.restart()
            await stack.service("rollup").start()

            async def exact() -> bool:
                for node in ("bl", "bl.c1", "bl.c1.t1", new_branch["id"], "bl.c2"):
                    if await served(node) != tally.served_under(node):
                        return False
                return True

            try:
                await wait_until(exact, 90, 0.5, "every accepted event counts")
            except AssertionError:
                got = {n: await served(n) for n in ("bl", "bl.c1", "bl.c2", new_branch["id"])}
                want = {n: tally.served_under(n) for n in got}
                raise AssertionError(f"rollup {got} != tally {want}") from None
            # nothing twice: one fact per activity, at its latest revision
            conn = await asyncpg.connect(stack.database_url)
            try:
                facts = await conn.fetch("SELECT activity_id, revision FROM rollup.facts")
            finally:
                await conn.close()
            assert {f["activity_id"]: f["revision"] for f in facts} == {
                a: rev for a, (_, rev, _) in tally.latest.items()
            }
            metrics = (await client.get(f"{rep}/metrics")).text
            assert 'huibao_outbox_topic_started_over_total{topic="huibao.activity.accepted"}' in (
                metrics
            ), "the relay did not report the accepted topic starting over"
            assert 'huibao_outbox_republished_total{topic="huibao.orgunit.changes"}' in metrics
            log = stack.service("reporting").log_path.read_text()
            assert "outbox_topic_started_over" in log
    except BaseException:
        print("logs kept in", keep_logs(stack))
        raise
    finally:
        if producer is not None:
            await producer.stop()
        await stack.stop()


async def post(client: httpx.AsyncClient, base: str, events: list[dict[str, Any]]) -> None:
    for i in range(0, len(events), 50):
        r = await client.post(f"{base}/v1/events", json=events[i : i + 50])
        assert r.status_code in (200, 202, 207), r.text
        for result in r.json()["results"]:
            assert result["status"] in ("accepted", "duplicate"), result


async def _equal(served: Any, node: str, want: int) -> bool:
    return bool(await served(node) == want)


async def _all_published(database_url: str, messages: int) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        seen = await conn.fetchval("SELECT count(*) FROM reporting.events_seen")
        waiting = await conn.fetchval(
            "SELECT count(*) FROM reporting.outbox WHERE published_offset IS NULL"
        )
    finally:
        await conn.close()
    return bool(seen >= messages and waiting == 0)
