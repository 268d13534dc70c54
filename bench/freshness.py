"""Phase: freshness. Load events at a steady rate with a probe every 100 ms at one branch,
polled in its summary: the time from a probe's send to its being counted."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx

from bench.common import TARGETS, BenchError, pct, summary
from bench.producing import LoadProducer
from huibao_contracts.periods import Period
from huibao_stack.stack import EmbeddedStack


async def freshness(
    http: httpx.AsyncClient,
    stack: EmbeddedStack,
    load: LoadProducer,
    rate: float,
    seconds: float,
    within: float,
) -> dict[str, Any]:
    """Run `load` at `rate` for `seconds` with probes; poll until every probe is seen (at
    most `within` seconds after the load ends)."""
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
    with contextlib.suppress(TimeoutError):  # probes not seen by then: probes_seen < probes
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
