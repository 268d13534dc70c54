"""`make bench`: the whole pipeline measured on the embedded stack, against its ceiling.

Two stacks run one after the other (broker, PostgreSQL and the three services each):

1. a city (BENCH_BRANCHES, default 7,000 branches, ~200,000 members), bench/city.py:
   - end-to-end throughput (bench/throughput.py): BENCH_EVENTS (default ~100,000)
     generated events produced onto `huibao.activity.submitted`, timed until the rollup's
     summaries equal the generator's totals for every month; then city and county totals
     are checked exactly;
   - the raw consume rate of the same messages on the same broker (bare aiokafka consumer,
     no group, assign + seek to beginning), and the ratio e2e / raw;
   - freshness (bench/freshness.py): load events at a steady rate (BENCH_FRESH_RATE,
     5,000/s, or what the pipeline sustained if less) with a probe every 100 ms at one
     branch, polled in its summary;
   - query latency (bench/querying.py): summary and children at BENCH_QUERY_RATE (500/s)
     from bench/http_load.py (open loop, latency from each request's scheduled instant)
     while ingestion runs, against the applying rollup and a query-only replica; then the
     same mix against a naive baseline (bench/naive.py: a raw events table and recursive
     CTEs at request time, in its own database, loaded with the same events, paced by a
     token bucket) in the same run;
2. a national sample (BENCH_SCALE, default 50,000 branches; the issue's target is
   1,000,000), bench/close.py: the tree is loaded, one month of Party Day reports goes
   through the pipeline, and the scheduler's manual clock is moved through the monthly
   cycle and the quarterly feedback, each step timed.

Peak RSS of every service process (and the broker and PostgreSQL) is sampled throughout
(bench/sampling.py). Results: a table on stdout (bench/report.py) and
`bench/results/<date>-<sha>.json`. Settings: bench/settings.py (BENCH_EVENTS,
BENCH_BRANCHES, BENCH_SCALE, BENCH_FRESH_RATE, BENCH_FRESH_SECONDS, BENCH_QUERY_RATE,
BENCH_QUERY_SECONDS, BENCH_QUERY_INGEST_RATE, BENCH_TIMEOUT, BENCH_SEED, BENCH_PHASES).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import platform
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from pydantic import ValidationError
from tests.support.waits import WaitTimeoutError

from bench.city import city_phase
from bench.close import close_phase
from bench.common import RESULTS, ROOT, TARGETS, BenchError, git_sha, say
from bench.report import render, table
from bench.sampling import MemorySampler
from bench.settings import BenchSettings

Phase = Callable[[BenchSettings, MemorySampler, dict[str, Any]], Awaitable[None]]
PHASES: dict[str, Phase] = {"city": city_phase, "close": close_phase}
FAILED = (BenchError, WaitTimeoutError, httpx.HTTPError, OSError, asyncpg.PostgresError)
"""What makes one phase fail (and the run go on with the next)."""


def run_header(cfg: BenchSettings, started: dt.datetime, sha: str) -> dict[str, Any]:
    """The start of a results document: the run, its host and parameters, the targets."""
    return {
        "run": {
            "started": started.isoformat(timespec="seconds"),
            "git": sha,
            "host": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "machine": platform.machine(),
            },
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
            "params": cfg.params(),
        },
        "targets": TARGETS,
    }


async def run_phases(cfg: BenchSettings, out: dict[str, Any]) -> list[str]:
    """Run the chosen phases in order, sampling memory throughout; the failures."""
    sampler = MemorySampler()
    sampler.start()
    failures = []
    try:
        for name, phase in PHASES.items():
            if name not in cfg.phases:
                continue
            try:
                await phase(cfg, sampler, out)
            except FAILED as e:
                failures.append(f"{name}: {type(e).__name__}: {e}")
                say(f"phase {name} failed: {e}")
    finally:
        await sampler.stop()
    out["peak_rss_mib"] = {k: round(v, 1) for k, v in sampler.peak.items()}
    return failures


def save(out: dict[str, Any], started: dt.datetime, sha: str, results: Path = RESULTS) -> Path:
    """Write the results document; its path."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{started:%Y%m%d-%H%M%S}-{sha}.json"
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False, default=str) + "\n")
    return path


async def main() -> int:
    """Run `make bench`; 1 when a phase failed, 2 when the settings are refused."""
    try:
        cfg = BenchSettings()
    except ValidationError as e:
        print(f"make bench: {e}", file=sys.stderr)
        return 2
    started = dt.datetime.now(dt.UTC)
    sha = git_sha()
    out = run_header(cfg, started, sha)
    failures = await run_phases(cfg, out)
    out["run"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out["run"]["seconds"] = round((dt.datetime.now(dt.UTC) - started).total_seconds())
    if failures:
        out["failures"] = failures
    rows = table(out)
    out["table"] = [list(r) for r in rows]
    path = save(out, started, sha)
    print()
    print(
        f"Huibao benchmark {started:%Y-%m-%d %H:%M} UTC, git {sha}, {os.cpu_count()} CPUs, "
        f"load average {out['run']['load_avg_at_start']} → {out['run']['load_avg_at_end']}"
    )
    print(render(rows))
    if failures:
        print("\nFailures:\n  " + "\n  ".join(failures))
    print(f"\nSaved {path.relative_to(ROOT)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
