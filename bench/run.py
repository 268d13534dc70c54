"""`make bench`: the whole pipeline measured on the embedded stack, against its ceiling.

Two stacks run one after the other (broker, PostgreSQL and the three services each):

1. a city (BENCH_BRANCHES, default 7,000 branches, ~200,000 members):
   - end-to-end throughput: BENCH_EVENTS (default ~100,000) generated events produced onto
     `huibao.activity.submitted`, timed until the rollup's summaries equal the generator's
     totals for every month; then city and county totals are checked exactly;
   - the raw consume rate of the same messages on the same broker (bare aiokafka consumer,
     no group, assign + seek to beginning), and the ratio e2e / raw;
   - freshness: load events at a steady rate (BENCH_FRESH_RATE, 5,000/s, or what the pipeline
     sustained if less) with a probe every 100 ms at one branch, polled in its summary;
   - query latency: summary and children at BENCH_QUERY_RATE (500/s) from
     bench/query_load.py (open loop, latency from each request's scheduled instant) while
     ingestion runs, against the applying rollup and a query-only replica; then the same mix
     against a naive baseline (a raw events table and recursive CTEs at request time, in
     its own database, loaded with the same events, paced by a token bucket) in the same
     run;
2. a national sample (BENCH_SCALE, default 50,000 branches; the issue's target is
   1,000,000): the tree is loaded, one month of Party Day reports goes through the pipeline,
   and the scheduler's manual clock is moved through the monthly cycle and the quarterly
   feedback, each step timed.

Peak RSS of every service process (and the broker and PostgreSQL) is sampled throughout.
Results: a table on stdout and `bench/results/<date>-<sha>.json`.

Environment: BENCH_EVENTS, BENCH_BRANCHES, BENCH_SCALE, BENCH_FRESH_RATE,
BENCH_FRESH_SECONDS, BENCH_QUERY_RATE, BENCH_QUERY_SECONDS, BENCH_QUERY_INGEST_RATE
(events/s ingested while queries are measured, 1,000), BENCH_TIMEOUT (longest wait of any
one phase, seconds), BENCH_SEED, BENCH_PHASES (comma list of city,close; default both).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import platform
import random
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import orjson
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.generate import (
    CHECKED_METRICS,
    Tree,
    Workload,
    city_tree,
    load_event,
    load_totals,
    month_workload,
    months_before,
    national_sample,
    probe_event,
)
from bench.naive import NaiveBaseline
from bench.query_load import mix_paths, run_load
from huibao_contracts import topics
from huibao_contracts.calendar import CalendarRules
from huibao_contracts.periods import Period
from huibao_platform.kafka import CachedPartitioner
from huibao_stack.stack import EmbeddedStack

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TZ = ZoneInfo("Asia/Shanghai")
EVENTS_PER_CITY_MONTH = 1.69  # events per branch per month in the city workload (generated)

TARGETS = {
    "e2e_events_per_s": 50_000,
    "e2e_over_raw": 0.5,
    "freshness_p99_s": 1.0,
    "freshness_rate": 5_000,
    "summary_p99_ms": 10.0,
    "query_rate": 500,
    "close_branches": 1_000_000,
    "close_s": 60.0,
    "service_rss_mib": 1024,
}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


class BenchError(RuntimeError):
    """A phase could not complete (a timeout, a refused request)."""


def pct(values: list[float], q: float) -> float | None:
    """The q-quantile (nearest rank) of `values`, None when empty."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def git_sha() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "nogit"
    return f"{sha}-dirty" if dirty else sha


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- memory ------------------------------------------------------------------------------------


class MemorySampler:
    """Peak RSS per process group, sampled every `interval` seconds (psutil)."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.peak: dict[str, float] = {}
        self._groups: dict[str, Callable[[], list[int]]] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, label: str, pids: Callable[[], list[int]]) -> None:
        self._groups[label] = pids

    def sample(self) -> None:
        for label, pids in self._groups.items():
            total = 0
            for pid in pids():
                with contextlib.suppress(psutil.Error):
                    total += psutil.Process(pid).memory_info().rss
            self.peak[label] = max(self.peak.get(label, 0.0), total / (1 << 20))

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by each watched group, and by this process."""
        out: dict[str, float] = {}
        for label, pids in self._groups.items():
            total = 0.0
            for pid in pids():
                with contextlib.suppress(psutil.Error):
                    t = psutil.Process(pid).cpu_times()
                    total += t.user + t.system
            out[label] = total
        own = psutil.Process().cpu_times()
        out["benchmark (producer, pollers)"] = own.user + own.system
        return out

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self.sample()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _with_children(pid: int | None) -> list[int]:
    if pid is None:
        return []
    try:
        proc = psutil.Process(pid)
        return [pid, *(c.pid for c in proc.children(recursive=True))]
    except psutil.Error:
        return []


def watch_stack(sampler: MemorySampler, stack: EmbeddedStack, prefix: str) -> None:
    for name in stack.service_names:
        sampler.watch(f"{prefix}{name}", lambda n=name: _with_children(stack.service(n).pid))
    infra = stack.infra
    if infra.postgres is not None:
        pg = infra.postgres
        sampler.watch(f"{prefix}postgres (all backends)", lambda: _with_children(pg.pid))
    if infra.broker is not None:
        br = infra.broker
        sampler.watch(f"{prefix}broker", lambda: _with_children(br.pid))


# --- helpers -----------------------------------------------------------------------------------


def serialise(events: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    return [(str(e["subject"]).encode(), orjson.dumps(e)) for e in events]


HEADERS = [("content-type", b"application/cloudevents+json")]


async def new_producer(bootstrap: str) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        enable_idempotence=False,
        linger_ms=10,
        max_batch_size=1 << 20,
        max_request_size=8 << 20,
        request_timeout_ms=30_000,
    )
    await producer.start()
    return producer


async def produce_all(producer: AIOKafkaProducer, records: list[tuple[bytes, bytes]]) -> None:
    """Produce in record batches per partition (Kafka's key → partition rule), so that the
    benchmark's own producer costs little of the CPU it shares with the pipeline."""
    topic = topics.ACTIVITY_SUBMITTED
    every = sorted(await producer.partitions_for(topic))
    partition_of = CachedPartitioner()
    for start in range(0, len(records), 5000):
        batches: dict[int, Any] = {}
        sent = []
        for key, value in records[start : start + 5000]:
            p = partition_of(key, every, every)
            batch = batches.get(p)
            if batch is None:
                batch = batches[p] = producer.create_batch()
            while batch.append(key=key, value=value, timestamp=None, headers=HEADERS) is None:
                sent.append(await producer.send_batch(batch, topic, partition=p))
                batch = batches[p] = producer.create_batch()
        for p, batch in batches.items():
            sent.append(await producer.send_batch(batch, topic, partition=p))
        await asyncio.gather(*sent)


async def get_json(http: httpx.AsyncClient, url: str, **params: Any) -> dict[str, Any]:
    r = await http.get(url, params=params or None)
    if r.status_code != 200:
        raise BenchError(f"GET {url} {params} → {r.status_code} {r.text[:300]}")
    body: dict[str, Any] = r.json()
    return body


async def summary(http: httpx.AsyncClient, rollup: str, node: str, period: str) -> dict[str, Any]:
    body = await get_json(http, f"{rollup}/v1/nodes/{node}/summary", period=period)
    metrics: dict[str, Any] = body["metrics"]
    return metrics


def checked(metrics: dict[str, Any]) -> dict[str, int]:
    return {m: int(metrics.get(m) or 0) for m in CHECKED_METRICS}


async def wait_until(
    what: str, check: Callable[[], Awaitable[bool]], within: float, every: float = 0.25
) -> float:
    """Poll `check` until true; return seconds waited; raise BenchError on timeout."""
    started = time.perf_counter()
    deadline = started + within
    while True:
        with contextlib.suppress(httpx.HTTPError, BenchError):
            if await check():
                return time.perf_counter() - started
        if time.perf_counter() > deadline:
            raise BenchError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(every)


async def load_tree(
    http: httpx.AsyncClient, stack: EmbeddedStack, tree: Tree, within: float
) -> dict[str, float]:
    """PUT the tree in chunks (parents first), then wait until the rollup counts its branches."""
    rep, roll = stack.urls["reporting"], stack.urls["rollup"]
    started = time.perf_counter()
    chunk = 50_000
    for i in range(0, len(tree.units), chunk):
        r = await http.put(
            f"{rep}/v1/orgunits",
            content=orjson.dumps(tree.units[i : i + chunk]),
            headers={"Content-Type": "application/json"},
        )
        if r.status_code >= 300:
            raise BenchError(f"PUT /v1/orgunits → {r.status_code} {r.text[:500]}")
    put_s = time.perf_counter() - started
    month = str(Period.month_of(dt.date.today()))

    async def known() -> bool:
        m = await summary(http, roll, tree.root, month)
        return int(m.get("orgunits.branches") or 0) == len(tree.branches)

    await wait_until("the rollup to know the tree", known, within)
    return {
        "registry_put_s": round(put_s, 2),
        "visible_in_rollup_s": round(time.perf_counter() - started, 2),
    }


# --- phase 1: the city ---------------------------------------------------------------------------


def cpu_per_event(
    before: dict[str, float], after: dict[str, float], events: int, prefix: str
) -> dict[str, float]:
    """CPU µs per event of each process group between two `cpu_seconds` snapshots."""
    out = {
        k.removeprefix(prefix): round((after[k] - before.get(k, 0.0)) / events * 1e6, 1)
        for k in after
        if k in before and k.startswith((prefix, "benchmark"))
    }
    out["total"] = round(sum(out.values()), 1)
    return out


async def throughput(
    http: httpx.AsyncClient,
    stack: EmbeddedStack,
    tree: Tree,
    work: Workload,
    within: float,
    sampler: MemorySampler,
    prefix: str,
) -> dict[str, Any]:
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
        await wait_until("the city totals", all_visible, within, every=0.2)
    except BenchError as e:
        result["error"] = str(e)
    elapsed = time.perf_counter() - started
    cpu = cpu_per_event(cpu_before, sampler.cpu_seconds(), len(records), prefix)
    result["elapsed_s"] = round(elapsed, 2)
    result["events_per_s"] = round(len(records) / elapsed)
    result["cpu_us_per_event"] = cpu
    # every part shares the machine's cores: the rate their CPU alone would allow
    result["cpu_bound_events_per_s"] = round((os.cpu_count() or 1) * 1e6 / cpu["total"])
    # exactness, at the end: the city and every county, every month
    mismatches = []
    nodes = [tree.root, *tree.of_level("county")]
    for m in work.months:
        got = await asyncio.gather(*(summary(http, roll, n, m) for n in nodes))
        for n, g in zip(nodes, got, strict=True):
            exp = work.expected.of(n, m)
            if checked(g) != exp:
                diff = {k: (checked(g)[k], v) for k, v in exp.items() if checked(g)[k] != v}
                mismatches.append({"node": n, "period": m, "got_vs_expected": diff})
    result["exact"] = not mismatches
    result["checked"] = (
        f"{len(nodes)} nodes x {len(work.months)} months x {len(CHECKED_METRICS)} metrics"
    )
    if mismatches:
        result["mismatches"] = mismatches[:5]
    return result


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


class LoadProducer:
    """Steady load events at `rate`/s (pure `load_event(n)`), and probes when asked."""

    def __init__(
        self, producer: AIOKafkaProducer, tree: Tree, day: dt.date, probe_branch: str
    ) -> None:
        self.producer = producer
        self.tree = tree
        self.day = day
        self.probe_branch = probe_branch
        self.sent = 0
        self.probes_sent = 0
        self.probe_at: dict[int, float] = {}
        self.behind = 0.0

    async def run(self, rate: float, seconds: float, probe_every: float | None) -> None:
        topic = topics.ACTIVITY_SUBMITTED
        started = time.perf_counter()
        base = self.sent
        next_probe = started
        while (now := time.perf_counter()) - started < seconds:
            due = base + int(rate * (now - started)) - self.sent
            self.behind = max(self.behind, due / rate if rate else 0)
            for _ in range(min(due, int(rate))):
                ev = load_event(self.tree, self.sent, self.day, exclude=self.probe_branch)
                await self.producer.send(
                    topic, orjson.dumps(ev), key=str(ev["subject"]).encode(), headers=HEADERS
                )
                self.sent += 1
            if probe_every is not None and now >= next_probe:
                self.probes_sent += 1
                k = self.probes_sent
                ev = probe_event(self.probe_branch, k, self.day)
                fut = await self.producer.send(
                    topic, orjson.dumps(ev), key=self.probe_branch.encode(), headers=HEADERS
                )
                self.probe_at[k] = time.perf_counter()
                fut.add_done_callback(lambda _f: None)
                next_probe += probe_every
            await asyncio.sleep(0.01)
        await self.producer.flush()


async def freshness(
    http: httpx.AsyncClient,
    stack: EmbeddedStack,
    load: LoadProducer,
    rate: float,
    seconds: float,
    within: float,
) -> dict[str, Any]:
    roll = stack.urls["rollup"]
    period = str(Period.month_of(load.day))
    seen_at: dict[int, float] = {}
    done = asyncio.Event()
    polls = 0

    async def poll() -> None:
        nonlocal polls
        visible = 0
        while not done.is_set() or visible < load.probes_sent:
            with contextlib.suppress(httpx.HTTPError, BenchError):
                m = await summary(http, roll, load.probe_branch, period)
                polls += 1
                now = time.perf_counter()
                count = int(m.get("lesson.delivered") or 0)
                for k in range(visible + 1, count + 1):
                    seen_at[k] = now
                visible = max(visible, count)
            await asyncio.sleep(0.005)

    poller = asyncio.create_task(poll())
    started = time.perf_counter()
    await load.run(rate, seconds, probe_every=0.1)
    sent_s = time.perf_counter() - started
    done.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(poller, within)
    lat = [seen_at[k] - load.probe_at[k] for k in sorted(load.probe_at) if k in seen_at]
    return {
        "target_rate": TARGETS["freshness_rate"],
        "rate": round(rate),
        "achieved_send_rate": round(load.sent / sent_s),
        "seconds": seconds,
        "probes": load.probes_sent,
        "probes_seen": len(lat),
        "polls": polls,
        "p50_s": round(pct(lat, 0.5) or -1, 3),
        "p99_s": round(pct(lat, 0.99) or -1, 3),
        "max_s": round(max(lat) if lat else -1, 3),
    }


class Pacer:
    """Open-loop token bucket: request i starts at t0 + i/rate unless `cap` are in flight."""

    def __init__(self, rate: float, seconds: float, cap: int) -> None:
        self.rate, self.seconds, self.cap = rate, seconds, cap

    async def run(self, make: Callable[[int], Awaitable[tuple[str, float]]]) -> dict[str, Any]:
        lat: dict[str, list[float]] = {}
        errors = 0
        dropped = 0
        inflight: set[asyncio.Task[None]] = set()

        async def one(i: int) -> None:
            nonlocal errors
            try:
                kind, seconds = await make(i)
                lat.setdefault(kind, []).append(seconds * 1000)
            except Exception:
                errors += 1

        started = time.perf_counter()
        i = 0
        while (now := time.perf_counter()) - started < self.seconds:
            while i <= (now - started) * self.rate:
                if len(inflight) >= self.cap:
                    dropped += 1
                else:
                    t = asyncio.create_task(one(i))
                    inflight.add(t)
                    t.add_done_callback(inflight.discard)
                i += 1
            await asyncio.sleep(0.002)
        if inflight:
            await asyncio.wait(inflight, timeout=60)
        elapsed = time.perf_counter() - started
        done = sum(len(v) for v in lat.values())
        out: dict[str, Any] = {
            "target_rate": self.rate,
            "achieved_rate": round(done / elapsed, 1),
            "requests": done,
            "dropped_at_cap": dropped,
            "errors": errors,
        }
        for kind, v in sorted(lat.items()):
            out[kind] = {
                "n": len(v),
                "p50_ms": round(pct(v, 0.5) or -1, 2),
                "p99_ms": round(pct(v, 0.99) or -1, 2),
            }
        return out


def query_mix(tree: Tree, months: list[str], seed: int) -> Callable[[int], tuple[str, str, str]]:
    """Request i → (endpoint, node, period): summary and children alternately, nodes by level."""
    levels = {lv: tree.of_level(lv) for lv in ("city", "county", "township")}
    order = ["city", "county", "township", "township"]

    def pick(i: int) -> tuple[str, str, str]:
        rng = random.Random(seed * 1_000_003 + i)
        nodes = levels[order[i % len(order)]]
        return ("summary" if i % 2 == 0 else "children", rng.choice(nodes), rng.choice(months))

    return pick


async def query_latency(
    stack: EmbeddedStack,
    tree: Tree,
    months: list[str],
    rate: float,
    seconds: float,
    load: LoadProducer,
    load_rate: float,
    naive: NaiveBaseline,
    seed: int,
    replica_url: str | None = None,
) -> dict[str, Any]:
    roll = stack.urls["rollup"]
    pick = query_mix(tree, months, seed)
    paths = mix_paths(tree, months, 2000, seed)

    async def api_load(base_url: str) -> dict[str, Any]:
        # bench/query_load.py: open loop over keep-alive connections, latency counted from
        # each request's scheduled instant; 2 s of the same load first, not recorded
        got = await run_load(
            base_url, stack.admin_token, paths, rate, seconds, connections=16, warmup=2.0
        )
        out = {
            k: got[k]
            for k in (
                "target_rate",
                "achieved_rate",
                "sent",
                "ok",
                "errors",
                "p50_ms",
                "p99_ms",
                "client_cpu_us_per_request",
            )
        }
        out.update(got["by_label"])
        return out

    async def naive_request(i: int) -> tuple[str, float]:
        kind, node, period = pick(i)
        t = time.perf_counter()
        await (naive.summary(node, period) if kind == "summary" else naive.children(node, period))
        return kind, time.perf_counter() - t

    ingest = asyncio.create_task(load.run(load_rate, seconds * 3 + 40, probe_every=None))
    try:
        say(
            f"query latency: rollup API at {rate:.0f} req/s for {seconds:.0f}s, "
            f"ingesting at {load_rate:.0f}/s"
        )
        api = await api_load(roll)
        replica: dict[str, Any] | None = None
        if replica_url:
            say(f"query latency: query-only rollup replica at {rate:.0f} req/s")
            replica = await api_load(replica_url)
        say(f"query latency: naive baseline at {rate:.0f} req/s for {seconds:.0f}s")
        base = await Pacer(rate, seconds, cap=naive.pool_size * 2).run(naive_request)
    finally:
        ingest.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ingest
        with contextlib.suppress(Exception):
            await load.producer.flush()
    ratio = {}
    for kind in ("summary", "children"):
        if kind in api and kind in base:
            ratio[kind] = {
                "p50_naive_over_api": round(
                    base[kind]["p50_ms"] / max(api[kind]["p50_ms"], 1e-6), 3
                ),
                "p99_naive_over_api": round(
                    base[kind]["p99_ms"] / max(api[kind]["p99_ms"], 1e-6), 3
                ),
            }
    out = {"ingest_rate": round(load_rate), "api": api, "naive": base, "ratio": ratio}
    if replica is not None:
        out["api_query_replica"] = replica
    return out


async def city_phase(  # noqa: PLR0915
    cfg: dict[str, Any], sampler: MemorySampler, out: dict[str, Any]
) -> None:
    today = dt.date.today()
    tree = city_tree(cfg["branches"], seed=cfg["seed"])
    months_n = max(
        1, min(12, math.ceil(cfg["events"] / (EVENTS_PER_CITY_MONTH * len(tree.branches))))
    )
    months = months_before(today, months_n)
    not_after = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    work = month_workload(tree, months, seed=cfg["seed"], not_after=not_after)
    out["city"] = {
        "branches": len(tree.branches),
        "members": tree.total_members,
        "counties": len(tree.of_level("county")),
        "townships": len(tree.of_level("township")),
        "months": months,
        "event_mix": dict(work.counts),
    }
    say(
        f"city: {len(tree.branches)} branches, {tree.total_members} members; "
        f"{len(work.events)} events over {months_n} months"
    )
    stack = EmbeddedStack(clock="manual", clock_start=dt.datetime.now(dt.UTC).isoformat())
    await stack.start()
    try:
        watch_stack(sampler, stack, "city/")
        headers = {"Authorization": f"Bearer {stack.admin_token}"}
        async with httpx.AsyncClient(headers=headers, timeout=120) as http:
            out["city"]["tree_load"] = await load_tree(http, stack, tree, cfg["timeout"])
            say(f"tree loaded: {out['city']['tree_load']}")
            tp = await throughput(http, stack, tree, work, cfg["timeout"], sampler, "city/")
            out["throughput"] = tp
            say(f"e2e: {tp}")
            raw = await raw_consume(stack.bootstrap_servers, len(work.events), cfg["timeout"])
            out["raw_consume"] = raw
            out["raw_consume"]["e2e_over_raw"] = (
                round(tp["events_per_s"] / raw["events_per_s"], 3)
                if raw.get("events_per_s")
                else None
            )
            say(f"raw consume: {raw}")

            e2e_rate = tp["events_per_s"] if "error" not in tp else 0
            target = float(cfg["fresh_rate"])
            rate = target if e2e_rate >= 1.2 * target else max(100.0, 0.7 * e2e_rate)
            producer = await new_producer(stack.bootstrap_servers)
            load_day = max(today.replace(day=1), today - dt.timedelta(days=1))
            load = LoadProducer(producer, tree, load_day, probe_branch=tree.branches[0])
            try:
                say(
                    f"freshness: {rate:.0f} events/s for {cfg['fresh_seconds']}s, "
                    "a probe every 100 ms"
                )
                fr = await freshness(http, stack, load, rate, cfg["fresh_seconds"], cfg["timeout"])
                fr["sustained_instead_of_target"] = rate < target
                out["freshness"] = fr
                say(f"freshness: {fr}")

                naive = NaiveBaseline(await stack.infra.fresh_database("bench_naive"))
                await naive.start()
                try:
                    await naive.load(
                        tree,
                        work.events,
                        [
                            load_event(tree, n, load_day, exclude=tree.branches[0])
                            for n in range(load.sent)
                        ],
                    )
                    out["naive_check"] = await naive.check(
                        http, roll_url=stack.urls["rollup"], tree=tree, month=months[-1]
                    )
                    say(f"naive baseline loaded; agrees with the rollup: {out['naive_check']}")
                    reader = await stack.add_replica(
                        "rollup", env={"HUIBAO_CONSUME_EVENTS": "false"}
                    )
                    ql = await query_latency(
                        stack,
                        tree,
                        months,
                        float(cfg["query_rate"]),
                        cfg["query_seconds"],
                        load,
                        min(rate, float(cfg["query_ingest_rate"])),
                        naive,
                        cfg["seed"],
                        replica_url=reader.url,
                    )
                finally:
                    await naive.stop()
                out["query"] = ql
                say(f"query: {json.dumps(ql)}")
            finally:
                await producer.stop()
            # everything sent in this run, exact at the end: the load month's lesson totals
            want = load_totals(load.sent)
            want["lesson.delivered"] += load.probes_sent
            want["lesson.audience"] += load.probes_sent
            period = str(Period.month_of(load_day))

            async def load_visible() -> bool:
                m = await summary(http, stack.urls["rollup"], tree.root, period)
                return all(int(m.get(k) or 0) == v for k, v in want.items())

            try:
                waited = await wait_until("the load events", load_visible, cfg["timeout"])
                out["load_exact"] = {
                    "events": load.sent + load.probes_sent,
                    "exact": True,
                    "drained_after_s": round(waited, 1),
                }
            except BenchError as e:
                out["load_exact"] = {
                    "events": load.sent + load.probes_sent,
                    "exact": False,
                    "error": str(e),
                }
    finally:
        sampler.sample()
        await stack.stop()


# --- phase 2: a large tree: monthly cycle and quarterly feedback --------------------------------


def close_month(today: dt.date) -> Period:
    """The last month of the last full quarter: its close and its feedback both lie behind."""
    return Period.quarter_of(today).previous().months()[-1]


async def close_phase(cfg: dict[str, Any], sampler: MemorySampler, out: dict[str, Any]) -> None:
    cal = CalendarRules()
    month = close_month(dt.date.today())
    quarter = Period.quarter_of(month.first_day)
    tree = national_sample(cfg["scale"], seed=cfg["seed"])
    work = month_workload(
        tree,
        [str(month)],
        seed=cfg["seed"] + 1,
        lessons=0,
        screenings=0,
        volunteering=0,
        not_after=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
    )
    res: dict[str, Any] = {
        "tree": tree.scale | {"members": tree.total_members, "units": len(tree.units)},
        "month": str(month),
        "quarter": str(quarter),
    }
    out["close"] = res
    say(
        f"national sample: {len(tree.branches)} branches in {tree.scale['counties_sampled']} "
        f"counties (x{tree.scale['factor']:.0f} to the country)"
    )
    start = cal.opens_at(month) - dt.timedelta(hours=1)
    stack = EmbeddedStack(
        clock="manual",
        clock_start=start.isoformat(),
        service_env={
            "scheduler": {"HUIBAO_FIRST_PERIOD": str(month), "HUIBAO_ROLLUP_TIMEOUT": "600"}
        },
    )
    await stack.start()
    try:
        watch_stack(sampler, stack, "national/")
        headers = {"Authorization": f"Bearer {stack.admin_token}"}
        async with httpx.AsyncClient(headers=headers, timeout=cfg["timeout"]) as http:
            res["tree_load"] = await load_tree(http, stack, tree, cfg["timeout"])
            say(f"tree loaded: {res['tree_load']}")
            steps: dict[str, Any] = {}
            res["steps"] = steps

            async def move(label: str, to: dt.datetime) -> None:
                t = time.perf_counter()
                r = await http.put(
                    f"{stack.urls['scheduler']}/v1/clock", json={"now": to.isoformat()}
                )
                took = time.perf_counter() - t
                if r.status_code >= 300:
                    raise BenchError(f"PUT /v1/clock {label} → {r.status_code} {r.text[:300]}")
                trans = r.json().get("transitions", [])
                steps[label] = {
                    "seconds": round(took, 2),
                    "transitions": [
                        f"{x.get('kind')}:{x.get('period')}:{x.get('step')}" for x in trans
                    ],
                }
                say(f"  {label}: {took:.2f}s {steps[label]['transitions']}")

            await move("opened", cal.opens_at(month))
            await move("upcoming_reminder (every branch)", cal.upcoming_reminder_at(month))
            tp = await throughput(http, stack, tree, work, cfg["timeout"], sampler, "national/")
            res["throughput"] = {k: v for k, v in tp.items() if k != "checked"}
            say(f"national e2e: {res['throughput']}")
            await move("overdue_reminder (missing branches)", cal.overdue_reminder_at(month))
            await move("deadline + escalation", cal.escalates_at(month))
            await move("monthly close (dispatch)", cal.closes_at(month))
            await move("quarterly feedback (every unit)", cal.feedback_at(quarter))
            cycle = [
                v["seconds"] for k, v in steps.items() if k != "quarterly feedback (every unit)"
            ]
            res["monthly_cycle_total_s"] = round(sum(cycle), 2)
            res["monthly_close_s"] = steps["monthly close (dispatch)"]["seconds"]
            res["feedback_s"] = steps["quarterly feedback (every unit)"]["seconds"]
    finally:
        sampler.sample()
        await stack.stop()


# --- report ------------------------------------------------------------------------------------


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.3f}" if v < 10 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def table(out: dict[str, Any]) -> list[tuple[str, str, str, str]]:  # noqa: PLR0912, PLR0915
    rows: list[tuple[str, str, str, str]] = []

    def row(name: str, value: Any, target: str = "", ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("yes" if ok else "NO")
        rows.append((name, _fmt(value), target, verdict))

    tp, raw = out.get("throughput"), out.get("raw_consume")
    if tp:
        row(
            "e2e throughput, events/s (city)",
            tp["events_per_s"],
            "≥ 50,000",
            tp["events_per_s"] >= 50_000,
        )
        row(
            "  events / seconds / exact",
            f"{tp['events']:,} / {tp['elapsed_s']} s / {tp['exact']}",
            "exact",
            tp["exact"],
        )
        cpu = tp.get("cpu_us_per_event") or {}
        if cpu:
            row("  CPU µs per event, all processes", cpu["total"])
            for part, us in cpu.items():
                if part != "total":
                    row(f"    {part}", us)
            row("  rate the CPU alone allows, events/s", tp["cpu_bound_events_per_s"])
    if raw:
        row("raw consume, events/s (same broker)", raw["events_per_s"])
        r = raw.get("e2e_over_raw")
        row("  e2e / raw", r, "≥ 0.5", r is not None and r >= 0.5)
    fr = out.get("freshness")
    if fr:
        row("freshness rate, events/s", fr["rate"], "5,000", fr["rate"] >= 5000)
        row("freshness p50, s", fr["p50_s"])
        row("freshness p99, s", fr["p99_s"], "< 1", 0 <= fr["p99_s"] < 1)
    q = out.get("query")
    if q:
        api, base = q["api"], q["naive"]
        row("events/s ingested while querying", q["ingest_rate"])
        row(
            "query rate achieved, req/s (API)",
            api["achieved_rate"],
            "500",
            api["achieved_rate"] >= 475,
        )
        for kind in ("summary", "children"):
            if kind in api:
                row(
                    f"{kind} p50 / p99, ms (API)",
                    f"{api[kind]['p50_ms']} / {api[kind]['p99_ms']}",
                    "p99 < 10" if kind == "summary" else "",
                    api[kind]["p99_ms"] < 10 if kind == "summary" else None,
                )
            if kind in base:
                row(
                    f"{kind} p50 / p99, ms (naive CTE)",
                    f"{base[kind]['p50_ms']} / {base[kind]['p99_ms']}",
                )
        rep = q.get("api_query_replica")
        if rep:
            row("query rate achieved, req/s (query-only replica)", rep["achieved_rate"])
            for kind in ("summary", "children"):
                if kind in rep:
                    row(
                        f"{kind} p50 / p99, ms (query-only replica)",
                        f"{rep[kind]['p50_ms']} / {rep[kind]['p99_ms']}",
                        "p99 < 10" if kind == "summary" else "",
                        rep[kind]["p99_ms"] < 10 if kind == "summary" else None,
                    )
        row("query rate achieved, req/s (naive)", base["achieved_rate"])
        for kind, r in q.get("ratio", {}).items():
            row(
                f"  naive / API {kind} (p50, p99)",
                f"{r['p50_naive_over_api']}x, {r['p99_naive_over_api']}x",
            )
    c = out.get("close")
    if c and "monthly_close_s" in c:
        n = c["tree"]["branches"]
        row(f"national sample branches (x{c['tree']['factor']:.0f} = country)", n)
        if "throughput" in c:
            row("  e2e events/s on the large tree", c["throughput"]["events_per_s"])
        row("  tree load (registry + rollup), s", c["tree_load"]["visible_in_rollup_s"])
        row("  monthly cycle, all steps, s", c["monthly_cycle_total_s"])
        ok = c["monthly_close_s"] < 60 if n >= 1_000_000 else None
        row("  monthly close step, s", c["monthly_close_s"], "< 60 @ 1M", ok)
        row("  quarterly feedback, s", c["feedback_s"])
    for label, mib in sorted(out.get("peak_rss_mib", {}).items()):
        service = not ("postgres" in label or "broker" in label)
        row(
            f"peak RSS {label}, MiB",
            round(mib, 1),
            "< 1024" if service else "",
            mib < 1024 if service else None,
        )
    return rows


def render(rows: list[tuple[str, str, str, str]]) -> str:
    head = ("figure", "measured", "target", "met")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*head), line, *(fmt.format(*r) for r in rows)])


async def main() -> int:
    cfg = {
        "events": env_int("BENCH_EVENTS", 100_000),
        "branches": env_int("BENCH_BRANCHES", 7_000),
        "scale": env_int("BENCH_SCALE", 50_000),
        "fresh_rate": env_int("BENCH_FRESH_RATE", 5_000),
        "fresh_seconds": env_float("BENCH_FRESH_SECONDS", 20),
        "query_rate": env_int("BENCH_QUERY_RATE", 500),
        "query_seconds": env_float("BENCH_QUERY_SECONDS", 15),
        # ingestion while queries are measured: the national Party Day's peak hour is ~600
        # events/s (docs/scaling.md); the freshness rate (70 % of capacity) leaves queries
        # no CPU on two cores
        "query_ingest_rate": env_int("BENCH_QUERY_INGEST_RATE", 1_000),
        "timeout": env_float("BENCH_TIMEOUT", 300),
        "seed": env_int("BENCH_SEED", 7),
        "phases": os.environ.get("BENCH_PHASES", "city,close").split(","),
    }
    started = dt.datetime.now(dt.UTC)
    sha = git_sha()
    out: dict[str, Any] = {
        "run": {
            "started": started.isoformat(timespec="seconds"),
            "git": sha,
            "host": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "machine": platform.machine(),
            },
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
            "params": cfg,
        },
        "targets": TARGETS,
    }
    sampler = MemorySampler()
    sampler.start()
    failures = []
    try:
        for name, phase in (("city", city_phase), ("close", close_phase)):
            if name not in cfg["phases"]:
                continue
            try:
                await phase(cfg, sampler, out)
            except (BenchError, httpx.HTTPError, OSError, asyncpg.PostgresError) as e:
                failures.append(f"{name}: {type(e).__name__}: {e}")
                say(f"phase {name} failed: {e}")
    finally:
        await sampler.stop()
    out["peak_rss_mib"] = {k: round(v, 1) for k, v in sampler.peak.items()}
    out["run"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out["run"]["seconds"] = round((dt.datetime.now(dt.UTC) - started).total_seconds())
    if failures:
        out["failures"] = failures
    rows = table(out)
    text = render(rows)
    out["table"] = [list(r) for r in rows]
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{started:%Y%m%d-%H%M%S}-{sha}.json"
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False, default=str) + "\n")
    print()
    print(
        f"Huibao benchmark {started:%Y-%m-%d %H:%M} UTC, git {sha}, {os.cpu_count()} CPUs, "
        f"load average {out['run']['load_avg_at_start']} → {out['run']['load_avg_at_end']}"
    )
    print(text)
    if failures:
        print("\nFailures:\n  " + "\n  ".join(failures))
    print(f"\nSaved {path.relative_to(ROOT)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
