"""Phase 1, a city: tree load, end-to-end throughput, raw consume, freshness, the naive
baseline and query latency, on one embedded stack; at the end, every event sent in the
run is checked exactly."""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from typing import Any

import httpx
from tests.support.waits import WaitTimeoutError, wait_until

from bench.common import load_tree, say, summary
from bench.freshness import freshness
from bench.generate import (
    Tree,
    Workload,
    city_tree,
    load_event,
    load_totals,
    month_workload,
    months_before,
)
from bench.naive import NaiveBaseline
from bench.producing import LoadProducer, new_producer
from bench.querying import query_latency
from bench.sampling import MemorySampler, watch_stack
from bench.settings import BenchSettings
from bench.throughput import raw_consume, throughput
from huibao_contracts.periods import Period
from huibao_stack.stack import EmbeddedStack

EVENTS_PER_CITY_MONTH = 1.69  # events per branch per month in the city workload (generated)


def city_workload(cfg: BenchSettings, today: dt.date) -> tuple[Tree, Workload]:
    """The city and as many whole months (1-12) as make about `cfg.events` events."""
    tree = city_tree(cfg.branches, seed=cfg.seed)
    months_n = max(1, min(12, math.ceil(cfg.events / (EVENTS_PER_CITY_MONTH * len(tree.branches)))))
    months = months_before(today, months_n)
    not_after = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    return tree, month_workload(tree, months, seed=cfg.seed, not_after=not_after)


async def city_phase(cfg: BenchSettings, sampler: MemorySampler, out: dict[str, Any]) -> None:
    """Run the city phase; its results go into `out` as they come."""
    today = dt.date.today()
    tree, work = city_workload(cfg, today)
    out["city"] = {
        "branches": len(tree.branches),
        "members": tree.total_members,
        "counties": len(tree.of_level("county")),
        "townships": len(tree.of_level("township")),
        "months": work.months,
        "event_mix": dict(work.counts),
    }
    say(
        f"city: {len(tree.branches)} branches, {tree.total_members} members; "
        f"{len(work.events)} events over {len(work.months)} months"
    )
    stack = EmbeddedStack(clock="manual", clock_start=dt.datetime.now(dt.UTC).isoformat())
    await stack.start()
    try:
        watch_stack(sampler, stack, "city/")
        headers = {"Authorization": f"Bearer {stack.admin_token}"}
        async with httpx.AsyncClient(headers=headers, timeout=120) as http:
            out["city"]["tree_load"] = await load_tree(http, stack, tree, cfg.timeout)
            say(f"tree loaded: {out['city']['tree_load']}")
            tp = await throughput(http, stack, tree, work, cfg.timeout, sampler, "city/")
            out["throughput"] = tp
            say(f"e2e: {tp}")
            raw = await raw_consume(stack.bootstrap_servers, len(work.events), cfg.timeout)
            out["raw_consume"] = raw
            raw["e2e_over_raw"] = (
                round(tp["events_per_s"] / raw["events_per_s"], 3)
                if raw.get("events_per_s")
                else None
            )
            say(f"raw consume: {raw}")
            e2e_rate = tp["events_per_s"] if "error" not in tp else 0
            target = float(cfg.fresh_rate)
            rate = target if e2e_rate >= 1.2 * target else max(100.0, 0.7 * e2e_rate)
            load_day = max(today.replace(day=1), today - dt.timedelta(days=1))
            load = await _under_load(cfg, http, stack, tree, work, load_day, rate, out)
            out["load_exact"] = await _load_exact(http, stack, tree, load, cfg.timeout)
    finally:
        sampler.sample()
        await stack.stop()


async def _under_load(
    cfg: BenchSettings,
    http: httpx.AsyncClient,
    stack: EmbeddedStack,
    tree: Tree,
    work: Workload,
    load_day: dt.date,
    rate: float,
    out: dict[str, Any],
) -> LoadProducer:
    """Freshness at `rate`, then the naive baseline and query latency; the load it sent."""
    producer = await new_producer(stack.bootstrap_servers)
    load = LoadProducer(producer, tree, load_day, probe_branch=tree.branches[0])
    try:
        say(f"freshness: {rate:.0f} events/s for {cfg.fresh_seconds}s, a probe every 100 ms")
        fr = await freshness(http, stack, load, rate, cfg.fresh_seconds, cfg.timeout)
        fr["sustained_instead_of_target"] = rate < cfg.fresh_rate
        out["freshness"] = fr
        say(f"freshness: {fr}")
        naive = NaiveBaseline(await stack.infra.fresh_database("bench_naive"))
        await naive.start()
        try:
            loaded = [
                load_event(tree, n, load_day, exclude=tree.branches[0]) for n in range(load.sent)
            ]
            await naive.load(tree, work.events, loaded)
            out["naive_check"] = await naive.check(
                http, roll_url=stack.urls["rollup"], tree=tree, month=work.months[-1]
            )
            say(f"naive baseline loaded; agrees with the rollup: {out['naive_check']}")
            reader = await stack.add_replica("rollup", env={"HUIBAO_CONSUME_EVENTS": "false"})
            ql = await query_latency(
                stack,
                tree,
                work.months,
                float(cfg.query_rate),
                cfg.query_seconds,
                load,
                min(rate, float(cfg.query_ingest_rate)),
                naive,
                cfg.seed,
                replica_url=reader.url,
            )
        finally:
            await naive.stop()
        out["query"] = ql
        say(f"query: {json.dumps(ql)}")
    finally:
        await producer.stop()
    return load


async def _load_exact(
    http: httpx.AsyncClient, stack: EmbeddedStack, tree: Tree, load: LoadProducer, within: float
) -> dict[str, Any]:
    """Everything sent under load, exact at the end: the load month's lesson totals."""
    want = load_totals(load.sent)
    want["lesson.delivered"] += load.probes_sent
    want["lesson.audience"] += load.probes_sent
    period = str(Period.month_of(load.day))

    async def load_visible() -> bool:
        m = await summary(http, stack.urls["rollup"], tree.root, period)
        return all(int(m.get(k) or 0) == v for k, v in want.items())

    events = load.sent + load.probes_sent
    started = time.perf_counter()
    try:
        await wait_until(load_visible, timeout=within, interval=0.25, message="the load events")
    except WaitTimeoutError as e:
        return {"events": events, "exact": False, "error": str(e)}
    waited = time.perf_counter() - started
    return {"events": events, "exact": True, "drained_after_s": round(waited, 1)}
