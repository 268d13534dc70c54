"""The rollup's own apply rate: events/s from a full topic to committed aggregates.

Publishes a city tree (7 counties × 20 townships × 50 branches = 7,000 branches) and
N accepted events (Party Days and lessons) onto fresh topics, then starts one rollup
in-process and times how long it takes to apply them all (tree load included).

    uv run python bench/rollup_apply_rate.py --events 100000 \
        --database postgresql://postgres@127.0.0.1:5432/rollup_bench \
        --bootstrap 127.0.0.1:19292
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from huibao_platform.logs import configure_logging
from huibao_rollup.bootstrap import build_app
from huibao_rollup.settings import RollupSettings


def tree(prefix: str) -> list[dict[str, object]]:
    units: list[dict[str, object]] = [{"id": prefix, "name": "市", "level": "city"}]
    for c in range(7):
        cid = f"{prefix}.c{c}"
        units.append({"id": cid, "name": "县", "level": "county", "parent": prefix})
        for t in range(20):
            tid = f"{cid}.t{t}"
            units.append({"id": tid, "name": "镇", "level": "township", "parent": cid})
            units += [
                {
                    "id": f"{tid}.b{b}",
                    "name": "支部",
                    "level": "branch",
                    "parent": tid,
                    "members": 25,
                }
                for b in range(50)
            ]
    return units


def event(n: int, branch: str) -> bytes:
    if n % 2:
        data = {
            "activity_id": f"pd-{n}",
            "date": f"2026-{1 + n % 12:02d}-26",
            "members": 25,
            "attendees": 20,
        }
        type_ = "huibao.party_day.held.v1"
    else:
        data = {
            "activity_id": f"ls-{n}",
            "date": "2026-06-10",
            "speaker_role": "expert",
            "topic": "t",
            "audience": 30,
            "duration_minutes": 45,
        }
        type_ = "huibao.lesson.delivered.v1"
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": f"e{n}",
            "source": "/bench",
            "type": type_,
            "subject": branch,
            "time": "2026-06-27T10:00:00+08:00",
            "huibaoreceived": "2026-06-27T10:00:01+08:00",
            "data": data,
        }
    )


async def main(events: int, database: str, bootstrap: str, batch: int) -> None:
    configure_logging("bench", "warning")
    tag = uuid.uuid4().hex[:8]
    accepted, orgunits = f"bench.{tag}.accepted", f"bench.{tag}.orgunits"
    conn = await asyncpg.connect(database)
    await conn.execute("DROP SCHEMA IF EXISTS rollup CASCADE")
    await conn.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(accepted, 6, 1), NewTopic(orgunits, 1, 1)])
    await admin.close()
    units = tree(f"bn{tag}")
    branches = [str(u["id"]) for u in units if u["level"] == "branch"]
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=20, max_batch_size=1 << 20
    )
    await producer.start()
    for i, u in enumerate(units):
        parents = {}
        change = {
            "seq": i + 1,
            "kind": "upsert",
            "effective": None,
            "unit": u,
            "path": [u["id"]],
            **parents,
        }
        await producer.send(orgunits, orjson.dumps(change), key=str(u["id"]).encode())
    started = time.perf_counter()
    futures = [
        await producer.send(
            accepted,
            event(n, branches[n % len(branches)]),
            key=branches[n % len(branches)].encode(),
        )
        for n in range(events)
    ]
    await asyncio.gather(*futures)
    await producer.stop()
    print(f"published {events} events in {time.perf_counter() - started:.1f}s")
    settings = RollupSettings(
        DATABASE_URL=database,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        accepted_topic=accepted,
        orgunit_topic=orgunits,
        consumer_group=f"bench-{tag}",
        batch_max_records=batch,
        log_level="warning",
    )
    app = build_app(settings)
    pool = await asyncpg.create_pool(database, min_size=1, max_size=2)
    started = time.perf_counter()
    async with app.router.lifespan_context(app):
        while True:
            done = (
                await pool.fetchval(
                    'SELECT coalesce(sum("offset" + 1), 0) FROM rollup.offsets WHERE topic = $1',
                    accepted,
                )
                if await pool.fetchval("SELECT to_regclass('rollup.offsets') IS NOT NULL")
                else 0
            )
            if done >= events:
                break
            await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - started
    facts = await pool.fetchval("SELECT count(*) FROM rollup.facts")
    rows = await pool.fetchval("SELECT count(*) FROM rollup.agg")
    await pool.close()
    print(
        f"applied {events} events ({facts} facts, {rows} aggregate rows) in {elapsed:.1f}s"
        f" = {events / elapsed:,.0f} events/s (batch {batch})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/rollup_dev")
    parser.add_argument("--bootstrap", default="127.0.0.1:19292")
    parser.add_argument("--batch", type=int, default=5000)
    a = parser.parse_args()
    asyncio.run(main(a.events, a.database, a.bootstrap, a.batch))
