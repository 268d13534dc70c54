"""Phase: end-to-end throughput (a workload produced at once, timed until the rollup's
totals equal the generator's, then checked exactly), and the broker's raw consume rate."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from tests.support.waits import WaitTimeoutError, wait_until

from bench.common import checked, say, summary
from bench.generate import CHECKED_METRICS, Tree, Workload
from bench.producing import new_producer, produce_all, serialise
from bench.sampling import MemorySampler, cpu_per_event
from huibao_contracts import topics
from huibao_stack.stack import EmbeddedStack


async def throughput(
    http: httpx.AsyncClient,
    stack: EmbeddedStack,
    tree: Tree,
    work: Workload,
    within: float,
    sampler: MemorySampler,
    prefix: str,
) -> dict[str, Any]:
    """Produce `work` onto the submitted topic; time it until the root's totals are right."""
    roll = stack.urls["rollup"]
    records = serialise(work.events)
    want = {m: work.expected.of(tree.root, m) for m in work.months}
    producer = await new_producer(stack.bootstrap_servers)
    say(f"throughput: producing {len(records)} events onto {topics.ACTIVITY_SUBMITTED}")
    cpu_before = sampler.cpu_seconds()
    started = time.perf_counter()
    try:
        await produce_all(producer, records)
    finally:
        await producer.stop()
    produced_s = time.perf_counter() - started

    async def all_visible() -> bool:
        got = await asyncio.gather(*(summary(http, roll, tree.root, m) for m in work.months))
        return all(checked(g) == want[m] for g, m in zip(got, work.months, strict=True))

    result: dict[str, Any] = {"events": len(records), "produce_s": round(produced_s, 2)}
    try:
        await wait_until(all_visible, timeout=within, interval=0.2, message="the city totals")
    except WaitTimeoutError as e:
        result["error"] = str(e)
    elapsed = time.perf_counter() - started
    cpu = cpu_per_event(cpu_before, sampler.cpu_seconds(), len(records), prefix)
    result["elapsed_s"] = round(elapsed, 2)
    result["events_per_s"] = round(len(records) / elapsed)
    result["cpu_us_per_event"] = cpu
    # every part shares the machine's cores: the rate their CPU alone would allow
    result["cpu_bound_events_per_s"] = round((os.cpu_count() or 1) * 1e6 / cpu["total"])
    mismatches = await _mismatches(http, roll, tree, work)
    result["exact"] = not mismatches
    result["checked"] = (
        f"{1 + len(tree.of_level('county'))} nodes x {len(work.months)} months"
        f" x {len(CHECKED_METRICS)} metrics"
    )
    if mismatches:
        result["mismatches"] = mismatches[:5]
    return result


async def _mismatches(
    http: httpx.AsyncClient, roll: str, tree: Tree, work: Workload
) -> list[dict[str, Any]]:
    """Exactness, at the end: the city and every county, every month."""
    mismatches = []
    nodes = [tree.root, *tree.of_level("county")]
    for m in work.months:
        got = await asyncio.gather(*(summary(http, roll, n, m) for n in nodes))
        for n, g in zip(nodes, got, strict=True):
            exp, have = work.expected.of(n, m), checked(g)
            if have != exp:
                diff = {k: (have[k], v) for k, v in exp.items() if have[k] != v}
                mismatches.append({"node": n, "period": m, "got_vs_expected": diff})
    return mismatches


async def raw_consume(bootstrap: str, expected: int, within: float) -> dict[str, Any]:
    """The same messages read back with a bare consumer: no group, assign, seek to beginning."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=64 << 20,
        max_partition_fetch_bytes=16 << 20,
    )
    await consumer.start()
    try:
        parts = [
            TopicPartition(topics.ACTIVITY_SUBMITTED, p)
            for p in range(topics.PARTITIONS[topics.ACTIVITY_SUBMITTED])
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        count = 0
        started = time.perf_counter()
        deadline = started + within
        while count < expected and time.perf_counter() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=20_000)
            count += sum(len(v) for v in batch.values())
        elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
    return {
        "events": count,
        "elapsed_s": round(elapsed, 2),
        "events_per_s": round(count / elapsed) if elapsed else None,
        "complete": count >= expected,
    }
