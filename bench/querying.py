"""Phase: query latency. The query mix at a fixed rate while events are ingested, against
the applying rollup and a query-only replica (bench/http_load.py, open loop), then against
the naive baseline (a raw events table and recursive CTEs, paced by a token bucket)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.common import pct, say
from bench.generate import Tree
from bench.http_load import run_load
from bench.naive import NaiveBaseline
from bench.producing import LoadProducer
from bench.query_mix import mix_paths, query_mix
from huibao_stack.stack import EmbeddedStack

API_FIGURES = (
    "target_rate",
    "achieved_rate",
    "sent",
    "ok",
    "errors",
    "p50_ms",
    "p99_ms",
    "client_cpu_us_per_request",
)
"""What the results keep of each `run_load` (plus its figures by label)."""


class Pacer:
    """Open-loop token bucket: request i starts at t0 + i/rate unless `cap` are in flight."""

    def __init__(self, rate: float, seconds: float, cap: int) -> None:
        self.rate, self.seconds, self.cap = rate, seconds, cap

    async def run(self, make: Callable[[int], Awaitable[tuple[str, float]]]) -> dict[str, Any]:
        """Start `make(i)` on schedule; it answers (label, seconds); figures by label."""
        lat: dict[str, list[float]] = {}
        errors = 0
        dropped = 0
        inflight: set[asyncio.Task[None]] = set()

        async def one(i: int) -> None:
            nonlocal errors
            try:
                kind, seconds = await make(i)
                lat.setdefault(kind, []).append(seconds * 1000)
            except Exception:  # noqa: BLE001 (a failed request counts as an error of the run)
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
    """The mix at `rate` for `seconds` per target while `load` ingests at `load_rate`."""
    roll = stack.urls["rollup"]
    pick = query_mix(tree, months, seed)
    paths = mix_paths(tree, months, 2000, seed)

    async def api_load(base_url: str) -> dict[str, Any]:
        # open loop over keep-alive connections, latency counted from each request's
        # scheduled instant; 2 s of the same load first, not recorded
        got = await run_load(
            base_url, stack.admin_token, paths, rate, seconds, connections=16, warmup=2.0
        )
        out = {k: got[k] for k in API_FIGURES}
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
    out = {"ingest_rate": round(load_rate), "api": api, "naive": base, "ratio": ratios(api, base)}
    if replica is not None:
        out["api_query_replica"] = replica
    return out


def ratios(api: dict[str, Any], base: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Naive over API latency, p50 and p99, of each kind both measured."""
    out: dict[str, dict[str, float]] = {}
    for kind in ("summary", "children"):
        if kind in api and kind in base:
            out[kind] = {
                "p50_naive_over_api": round(
                    base[kind]["p50_ms"] / max(api[kind]["p50_ms"], 1e-6), 3
                ),
                "p99_naive_over_api": round(
                    base[kind]["p99_ms"] / max(api[kind]["p99_ms"], 1e-6), 3
                ),
            }
    return out
