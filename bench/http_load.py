"""A cheap open-loop HTTP/1.1 load generator for the query API.

Request i is *scheduled* at `t0 + i / rate`, whatever happened to the requests before it,
and its latency is measured from that scheduled instant to the last byte of its answer.
When the server (or this client) falls behind, requests wait in a backlog for a free
connection and that wait is counted: coordinated omission is not hidden (the approach of
wrk2). The connections are bench/http_client.py's. A full client costs too much here:
httpx at 500 req/s took 1,000-5,400 µs of CPU per request against this one's ~190, and
its own queueing put 5 ms to 45 s on the p99 (docs/scaling.md, "Query latency");
`client_cpu_us_per_request` says what this one costs in each run.

    result = await run_load("http://127.0.0.1:8002", token, paths, rate=500, duration=15)

Each path may be given as a `(label, path)` tuple; the default label is the last segment
of the path (`summary`, `children`). Latency figures are in milliseconds, over the answers
with a 2xx status; other statuses, timeouts and broken connections count as errors.
"""

from __future__ import annotations

import asyncio
import math
import resource
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from bench.common import pct
from bench.http_client import Load, Stats, requests
from bench.query_mix import PathSpec


async def run_load(
    base_url: str,
    token: str | None,
    paths: Sequence[PathSpec],
    rate: float,
    duration: float,
    *,
    connections: int = 8,
    timeout: float = 10.0,  # noqa: ASYNC109 (a per-request limit, not the call's)
    warmup: float = 0.0,
) -> dict[str, Any]:
    """Send GET `paths` round-robin at `rate` per second for `duration` seconds.

    `connections` keep-alive connections serve the scheduled requests one at a time each; a
    request finding no idle connection waits in a backlog, and that wait is part of its
    latency. `warmup` seconds of the same load run first and are not recorded. The result
    holds the achieved rate, latency percentiles overall and per label, statuses, errors and
    this process's CPU time per request (user + system, whatever else the process did then).
    """
    if rate <= 0 or duration <= 0 or not paths:
        raise ValueError("rate, duration and paths must be positive / non-empty")
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    prefix = url.path.rstrip("/")
    reqs = requests(
        f"{host}:{port}",
        token,
        [(p[0], prefix + p[1]) if isinstance(p, tuple) else prefix + p for p in paths],
    )
    stats = Stats()
    load = Load(host, port, stats, timeout)
    await load.open(connections)
    clock = time.perf_counter
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = clock()
    measure_from = started + warmup
    total = math.ceil(round((warmup + duration) * rate, 9))  # all due before the end
    try:
        sent, late_max = await _schedule(load, reqs, rate, started, measure_from, total)
        sent_at = clock()
        drain_until = sent_at + timeout + 1
        while load.outstanding > 0 and (now := clock()) < drain_until:
            load.expire(now)
            await asyncio.sleep(0.005)
    finally:
        load.close()
    finished = clock()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    all_lat = [x for v in stats.latencies.values() for x in v]
    ok = len(all_lat)
    result: dict[str, Any] = {
        "target_rate": rate,
        "duration_s": duration,
        "connections": connections,
        "sent": sent,
        "ok": ok,
        "achieved_rate": round(ok / max(1e-9, finished - measure_from), 1),
        "send_window_s": round(sent_at - measure_from, 3),
        "errors": stats.errors + max(0, sent - ok - stats.errors),
        "timeouts": stats.timeouts,
        "retried": load.retries,
        "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
        "p50_ms": _r(pct(all_lat, 0.5)),
        "p90_ms": _r(pct(all_lat, 0.9)),
        "p99_ms": _r(pct(all_lat, 0.99)),
        "max_ms": _r(max(all_lat) if all_lat else None),
        "scheduler_late_max_ms": round(late_max * 1000, 2),
        "client_cpu_s": round(cpu, 3),
        "client_cpu_us_per_request": round(cpu / total * 1e6, 1),
        "mean_body_bytes": round(stats.body_bytes / ok) if ok else None,
        "by_label": {
            label: {
                "n": len(v),
                "p50_ms": _r(pct(v, 0.5)),
                "p99_ms": _r(pct(v, 0.99)),
                "max_ms": _r(max(v)),
            }
            for label, v in sorted(stats.latencies.items())
        },
    }
    if stats.error_samples:
        result["error_samples"] = stats.error_samples
    return result


async def _schedule(
    load: Load,
    reqs: list[tuple[str, bytes]],
    rate: float,
    started: float,
    measure_from: float,
    total: int,
) -> tuple[int, float]:
    """Submit request i at `started + i / rate`, for i below `total`; how many of them were
    recorded (due after `measure_from`), and the most any was submitted late (seconds)."""
    clock = time.perf_counter
    sent, late_max, i = 0, 0.0, 0
    while i < total:
        now = clock()
        # every request due by now, also those a late wake-up left behind (they count
        # from when they were due)
        due_count = min(total, int((now - started) * rate) + 1)
        while i < due_count:
            due = started + i / rate
            recorded = due >= measure_from
            if recorded:
                late_max = max(late_max, now - due)
                sent += 1
            label, raw = reqs[i % len(reqs)]
            load.submit((due, label, raw, recorded))
            i += 1
        load.expire(now)
        if i < total:
            await asyncio.sleep(max(0.0, started + i / rate - clock()))
    return sent, late_max


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)
