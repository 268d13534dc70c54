"""Reporting's own intake rate: events/s from a full `submitted` topic to a drained outbox.

Loads a city tree (bench/generate.py `city_tree`, 7,000 branches) into the registry, publishes
N generated submitted events (the Party Day burst, lessons, trainings, duplicates,
corrections, late reports: `month_workload`) onto a fresh topic prefix, then starts one
reporting service in-process and times:

- intake: until every record has been ruled on (accepted, duplicate or rejected) and stored;
- relay: until the outbox is empty, i.e. every accepted event is on `huibao.activity.accepted`;
- CPU time per event over both, of this process (the service) and of the embedded
  PostgreSQL and broker (steadier than rates on a busy machine, and what bounds the rate
  when everything shares the same cores).

Then it checks the result: every distinct message (source + id) was accepted and stored
once, every repeat was ruled a duplicate, and nothing was rejected.

Without `--database` / `--bootstrap` it starts an embedded PostgreSQL and broker itself.

    uv run python bench/reporting_intake_rate.py --events 60000 --runs 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from bench.embedded import cpu_seconds, infrastructure
from bench.generate import city_tree, month_workload, months_before
from huibao_contracts import topics
from huibao_contracts.orgunits import OrgUnit
from huibao_platform import metrics
from huibao_platform.clock import SystemClock
from huibao_platform.kafka import create_topics
from huibao_platform.logs import configure_logging
from huibao_platform.serve import tune_gc
from huibao_platform.settings import TopicSettings
from huibao_reporting.bootstrap import KafkaSide, build_adapters, build_app
from huibao_reporting.bootstrap import bootstrap as wire
from huibao_reporting.settings import ReportingSettings

WAITING = "SELECT count(*) FROM reporting.outbox WHERE published_offset IS NULL"
"""Outbox rows not relayed yet (published ones are kept until the rollup confirms them)."""


def _outcomes() -> dict[str, int]:
    """Events ruled on by the Kafka intake so far, by outcome (the intake counter)."""
    out: dict[str, int] = {}
    for family in metrics.INTAKE.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("channel") == "kafka":
                key = sample.labels["outcome"]
                out[key] = out.get(key, 0) + int(sample.value)
    return out


def _ruled() -> int:
    return sum(_outcomes().values())


async def publish(bootstrap: str, prefix: str, events: list[dict[str, Any]]) -> float:
    """Produce every event onto `<prefix>huibao.activity.submitted`; answers seconds taken."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=20, max_batch_size=1 << 20
    )
    await producer.start()
    started = time.perf_counter()
    topic = prefix + topics.ACTIVITY_SUBMITTED
    headers = [("content-type", b"application/cloudevents+json")]
    futures = [
        await producer.send(topic, orjson.dumps(e), key=str(e["subject"]).encode(), headers=headers)
        for e in events
    ]
    await asyncio.gather(*futures)
    await producer.stop()
    return time.perf_counter() - started


async def run(
    args: argparse.Namespace, database: str, bootstrap: str, servers: dict[str, int]
) -> dict[str, Any]:
    prefix = f"ri{uuid.uuid4().hex[:6]}."
    tree = city_tree(7000, root=f"rc{uuid.uuid4().hex[:6]}")
    months = months_before(SystemClock().now().date(), args.months)
    workload = month_workload(tree, months)
    events = workload.events[: args.events]
    conn = await asyncpg.connect(database)
    await conn.execute("DROP SCHEMA IF EXISTS reporting CASCADE")
    await conn.close()
    settings = ReportingSettings(
        DATABASE_URL=database,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        topic_prefix=prefix,
        kafka_group_id=f"bench-{prefix}",
        kafka_batch_records=args.batch,
        log_level="warning",
    )
    await create_topics(TopicSettings(KAFKA_BOOTSTRAP_SERVERS=bootstrap, topic_prefix=prefix))
    before, counted = _ruled(), _outcomes()
    async with build_adapters(settings) as adapters:
        app = build_app(settings, adapters)
        tune_gc(app, settings.gc_threshold)  # as `huibao-reporting` runs it
        side: KafkaSide = app.state.kafka
        async with app.router.lifespan_context(app):
            registry = wire(adapters, settings, on_commit=side.kick).registry
            today = settings.calendar.local_date(SystemClock().now())
            units = [OrgUnit.model_validate(u) for u in tree.units]
            await registry.import_units(units, None, today)
            while not side.ready.is_set():  # noqa: ASYNC110 (polls a flag)
                await asyncio.sleep(0.05)
            pool = adapters.pool
            while await pool.fetchval(WAITING):  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # the registry's changes are out
            published = await publish(bootstrap, prefix, events)
            started, cpu = time.perf_counter(), time.process_time()
            others = {name: cpu_seconds(pid) for name, pid in servers.items()}
            deadline = started + args.timeout
            while _ruled() - before < len(events) and time.perf_counter() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            intake_s = time.perf_counter() - started
            while await pool.fetchval(WAITING):
                if time.perf_counter() > deadline:
                    break
                await asyncio.sleep(0.05)
            relay_s = time.perf_counter() - started
            cpu = time.process_time() - cpu
            others = {name: cpu_seconds(servers[name]) - t for name, t in others.items()}
            stored = await pool.fetchval("SELECT count(*) FROM reporting.events_seen")
            activities = await pool.fetchval("SELECT count(*) FROM reporting.activities")
    ruled = int(_ruled() - before)
    outcomes = {k: v - counted.get(k, 0) for k, v in _outcomes().items() if v > counted.get(k, 0)}
    distinct = len({(e["source"], e["id"]) for e in events})
    exact = stored == distinct and outcomes == {"accepted": distinct, "duplicate": ruled - distinct}
    return {
        "events": len(events),
        "ruled": ruled,
        "published_s": round(published, 1),
        "intake_s": round(intake_s, 2),
        "intake_events_per_s": round(ruled / intake_s),
        "relayed_s": round(relay_s, 2),
        "relayed_events_per_s": round(len(events) / relay_s),
        "cpu_us_per_event": round(cpu / len(events) * 1e6, 1),
        **{
            f"{name}_cpu_us_per_event": round(t / len(events) * 1e6, 1)
            for name, t in others.items()
        },
        "events_stored": stored,
        "distinct_messages": distinct,
        "exact": exact,
        "activities_stored": activities,
        "outcomes": outcomes,
    }


async def main(args: argparse.Namespace) -> None:
    configure_logging("bench", "warning")
    async with AsyncExitStack() as stack:
        database, bootstrap, servers = await infrastructure(
            stack, args.database, args.bootstrap, "reporting_bench"
        )
        results = []
        for i in range(args.runs):
            r = await run(args, database, bootstrap, servers)
            results.append(r)
            print(f"run {i + 1}: " + json.dumps(r), flush=True)
    intake = [r["intake_events_per_s"] for r in results]
    relayed = [r["relayed_events_per_s"] for r in results]
    print(
        f"reporting intake: median {statistics.median(intake):,.0f} events/s ruled and stored,"
        f" {statistics.median(relayed):,.0f} events/s through the relay, over {len(results)}"
        f" run(s) (batch {args.batch})"
    )
    if args.json:
        text = json.dumps({"runs": results}, indent=2) + "\n"
        await asyncio.to_thread(Path(args.json).write_text, text)
    if any(r["ruled"] != r["events"] or not r["exact"] for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--months", type=int, default=6, help="months of workload generated")
    parser.add_argument("--database", help="PostgreSQL URL (default: an embedded one)")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: embedded Tansu)")
    parser.add_argument("--batch", type=int, default=ReportingSettings().kafka_batch_records)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--json", help="also write the results to this file")
    asyncio.run(main(parser.parse_args()))
