"""The rollup's own apply rate: events/s from a full topic to committed aggregates.

Publishes a city tree (7 counties × 20 townships × 50 branches = 7,000 branches) and
N accepted events (Party Days over 12 months and lessons, with a share of duplicates and
corrections) onto fresh topics, then starts one rollup in-process and times how long it
takes to apply them all (tree load included). Reports events/s, facts and aggregate rows
written per batch, and where the batch time goes (lock facts / fold / facts write /
aggregate upsert / commit; the rest is fetching and decoding). Then checks the result:
the live aggregates equal a rebuild from facts, and the city totals equal what was sent;
and times the summary and children queries on the loaded tables.

Without `--database` / `--bootstrap` it starts an embedded PostgreSQL and broker itself.

    .venv/bin/python -m bench.rollup_apply_rate --events 100000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.common import pct
from bench.embedded import infrastructure
from huibao_contracts.activities import LESSON_TYPE, PARTY_DAY_TYPE
from huibao_contracts.envelope import RECEIVED_EXTENSION
from huibao_contracts.periods import Period
from huibao_platform.kafka import create_topics
from huibao_platform.logs import configure_logging
from huibao_platform.serve import tune_gc
from huibao_platform.settings import TopicSettings
from huibao_rollup.adapters import pg_admin
from huibao_rollup.bootstrap import Rollup, build_adapters, build_app
from huibao_rollup.settings import RollupSettings

MONTHS = 12


def tree(prefix: str) -> list[dict[str, object]]:
    units: list[dict[str, object]] = [{"id": prefix, "name": "市", "level": "city"}]
    for c in range(7):
        cid = f"{prefix}.c{c}"
        units.append({"id": cid, "name": "县", "level": "county", "parent": prefix})
        for t in range(20):
            tid = f"{cid}.t{t}"
            units.append({"id": tid, "name": "镇", "level": "township", "parent": cid})
            units += [
                {"id": f"{tid}.b{b}", "name": "支部", "level": "branch", "parent": tid}
                | {"members": 25}
                for b in range(50)
            ]
    return units


def event(n: int, branch: str, revision: int = 1, msg: str = "") -> bytes:
    """Odd n: a Party Day in month 1 + n % 12 (attendees 20, +1 per revision); even: a lesson."""
    if n % 2:
        data: dict[str, Any] = {
            "activity_id": f"pd-{n}",
            "date": f"2026-{1 + n % MONTHS:02d}-26",
            "members": 25,
            "attendees": 19 + revision,
            "revision": revision,
        }
        type_ = PARTY_DAY_TYPE
    else:
        data = {
            "activity_id": f"ls-{n}",
            "date": "2026-06-10",
            "speaker_role": "expert",
            "topic": "t",
            "audience": 30,
            "duration_minutes": 45,
            "revision": revision,
        }
        type_ = LESSON_TYPE
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": msg or f"e{n}-r{revision}",
            "source": "/bench",
            "type": type_,
            "subject": branch,
            "time": "2026-06-27T10:00:00+08:00",
            RECEIVED_EXTENSION: "2026-06-27T10:00:01+08:00",
            "data": data,
        }
    )


def stream(events: int, branches: list[str], dup: float, corr: float) -> list[tuple[str, bytes]]:
    """`events` records: mostly new activities, every 1/dup-th a duplicate of an earlier
    message, every 1/corr-th a revision 2 of an earlier Party Day."""
    out: list[tuple[str, bytes]] = []
    activities = 0
    dup_every = round(1 / dup) if dup else 0
    corr_every = round(1 / corr) if corr else 0
    while len(out) < events:
        i = len(out)
        if dup_every and i % dup_every == dup_every - 1 and out:
            out.append(out[i // 2])
        elif corr_every and i % corr_every == corr_every - 2 and activities > 2:
            n = (activities // 2) | 1  # an earlier Party Day
            b = branches[n % len(branches)]
            out.append((b, event(n, b, revision=2)))
        else:
            n = activities
            activities += 1
            b = branches[n % len(branches)]
            out.append((b, event(n, b)))
    return out


def expected_city(records: list[tuple[str, bytes]]) -> dict[str, int]:
    """The city's yearly totals, computed from the records independently of the rollup."""
    latest: dict[str, dict[str, Any]] = {}
    for _, value in records:
        data = orjson.loads(value)["data"]
        have = latest.get(data["activity_id"])
        if have is None or have["revision"] < data["revision"]:
            latest[data["activity_id"]] = data
    pd = [d for d in latest.values() if d["activity_id"].startswith("pd-")]
    return {
        "party_day.held": len(pd),
        "party_day.attendees": sum(d["attendees"] for d in pd),
        "lesson.delivered": len(latest) - len(pd),
    }


async def publish(bootstrap: str, units: list[dict[str, object]], records: Any) -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    accepted, orgunits = f"bench.{tag}.accepted", f"bench.{tag}.orgunits"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(accepted, 6, 1), NewTopic(orgunits, 1, 1)])
    await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=20, max_batch_size=1 << 20
    )
    await producer.start()
    for i, u in enumerate(units):
        change = {"seq": i + 1, "kind": "upsert", "effective": None, "unit": u, "path": [u["id"]]}
        await producer.send(orgunits, orjson.dumps(change), key=str(u["id"]).encode())
    futures = [await producer.send(accepted, v, key=k.encode()) for k, v in records]
    await asyncio.gather(*futures)
    await producer.stop()
    return accepted, orgunits


async def latency(rollup: Rollup, city: str, period: Period, n: int) -> dict[str, float]:
    """p50/p99 (ms) of the summary and children queries, called directly, sequentially."""
    out: dict[str, float] = {}
    queries = rollup.queries
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "summary": partial(queries.summary, city, period),
        "children": partial(queries.children, city, period, "party_day.held", 100, 0),
    }
    for name, call in calls.items():
        times = []
        for _ in range(n):
            t = time.perf_counter()
            await call()
            times.append((time.perf_counter() - t) * 1000)
        out[f"{name}_p50_ms"] = round(pct(times, 0.5) or -1, 2)
        out[f"{name}_p99_ms"] = round(pct(times, 0.99) or -1, 2)
    return out


async def run(args: argparse.Namespace, database: str, bootstrap: str) -> dict[str, Any]:
    prefix = f"bn{uuid.uuid4().hex[:6]}"
    units = tree(prefix)
    branches = [str(u["id"]) for u in units if u["level"] == "branch"]
    records = stream(args.events, branches, args.duplicates, args.corrections)
    conn = await asyncpg.connect(database)
    await conn.execute("DROP SCHEMA IF EXISTS rollup CASCADE")
    await conn.close()
    started = time.perf_counter()
    accepted, orgunits = await publish(bootstrap, units, records)
    published = time.perf_counter() - started
    settings = RollupSettings(
        DATABASE_URL=database,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        accepted_topic=accepted,
        orgunit_topic=orgunits,
        consumer_group=f"bench-{accepted}",
        batch_max_records=args.batch,
        log_level="warning",
    )
    await create_topics(TopicSettings(KAFKA_BOOTSTRAP_SERVERS=bootstrap))  # its reject topic
    pool = await asyncpg.create_pool(database, min_size=1, max_size=2)
    started, cpu = time.perf_counter(), time.process_time()
    async with build_adapters(settings) as adapters:
        app = build_app(settings, adapters)
        tune_gc(app, settings.gc_threshold)  # as `huibao-rollup` runs it
        async with app.router.lifespan_context(app):
            rollup: Rollup = app.state.rollup
            stats = rollup.applier.stats
            while stats.records < len(records):  # noqa: ASYNC110 (polls a counter)
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu
            await latency(rollup, prefix, Period.parse("2026"), 1)  # builds the tree snapshots
            lat = await latency(rollup, prefix, Period.parse("2026"), args.queries)
            got = (await rollup.queries.summary(prefix, Period.parse("2026")))["metrics"]
    diffs = await pg_admin.differences(pool)
    rows = await pool.fetchval("SELECT count(*) FROM rollup.monthly")
    await pool.close()
    want = expected_city(records)
    wrong = {m: (got[m], v) for m, v in want.items() if got[m] != v}
    batches = max(stats.batches, 1)
    split = {k: round(v, 2) for k, v in stats.seconds.items()}
    split["other"] = round(elapsed - sum(stats.seconds.values()), 2)
    steady = (stats.records - stats.first_records) / max(stats.last_done - stats.first_done, 1e-9)
    return {
        "events": len(records),
        "published_s": round(published, 1),
        "apply_s": round(elapsed, 2),
        "events_per_s": round(len(records) / elapsed),
        "steady_events_per_s": round(steady),
        "cpu_us_per_event": round(cpu / len(records) * 1e6, 1),
        "startup_s": round(stats.first_done - started, 2),
        "batches": stats.batches,
        "records_per_batch": round(stats.records / batches),
        "facts_per_batch": round(stats.facts / batches),
        "rows_per_batch": round(stats.rows / batches),
        "seconds": split,
        "aggregate_rows": rows,
        "differences": len(diffs),
        "wrong_totals": wrong,
        **lat,
    }


async def main(args: argparse.Namespace) -> None:
    configure_logging("bench", "warning")
    async with AsyncExitStack() as stack:
        database, bootstrap, _ = await infrastructure(
            stack, args.database, args.bootstrap, "rollup_bench"
        )
        results = []
        for i in range(args.runs):
            r = await run(args, database, bootstrap)
            results.append(r)
            print(f"run {i + 1}: " + json.dumps(r), flush=True)
    rates = [r["events_per_s"] for r in results]
    steady = [r["steady_events_per_s"] for r in results]
    print(
        f"rollup apply rate: median {statistics.median(rates):,.0f} events/s over {len(rates)}"
        f" run(s) ({', '.join(f'{x:,}' for x in rates)}); after the first batch"
        f" {statistics.median(steady):,.0f} events/s; batch {args.batch},"
        f" {results[-1]['rows_per_batch']} rows and {results[-1]['facts_per_batch']} facts"
        f" per batch; differences {[r['differences'] for r in results]},"
        f" wrong totals {[r['wrong_totals'] for r in results]}"
    )
    if args.json:
        text = json.dumps({"runs": results}, indent=2) + "\n"
        await asyncio.to_thread(Path(args.json).write_text, text)
    if any(r["differences"] or r["wrong_totals"] for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--database", help="PostgreSQL URL (default: an embedded one)")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: embedded Tansu)")
    parser.add_argument("--batch", type=int, default=RollupSettings().batch_max_records)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--duplicates", type=float, default=0.1, help="share of duplicates")
    parser.add_argument("--corrections", type=float, default=0.02, help="share of corrections")
    parser.add_argument("--queries", type=int, default=300, help="queries timed per endpoint")
    parser.add_argument("--json", help="also write the results to this file")
    asyncio.run(main(parser.parse_args()))
