"""What the phases of `make bench` share: targets, errors, percentiles, logging, the
rollup's summary, and loading a tree through the registry."""

from __future__ import annotations

import datetime as dt
import math
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
from tests.support.waits import wait_until

from bench.generate import CHECKED_METRICS, Tree
from huibao_contracts.periods import Period
from huibao_stack.stack import EmbeddedStack

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

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
"""What the issue asks of each figure (kept apart from what a run measures)."""


class BenchError(RuntimeError):
    """A phase could not complete (a refused request, a failed step)."""


def pct(values: Sequence[float], q: float) -> float | None:
    """The q-quantile of `values` by nearest rank (None when empty)."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def say(msg: str) -> None:
    """A progress line on stdout, with the time."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def git_sha() -> str:
    """The short commit of the working tree, `-dirty` when tracked files changed."""
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


async def get_json(http: httpx.AsyncClient, url: str, **params: Any) -> dict[str, Any]:
    """GET `url` and its JSON body; BenchError unless 200."""
    r = await http.get(url, params=params or None)
    if r.status_code != 200:
        raise BenchError(f"GET {url} {params} → {r.status_code} {r.text[:300]}")
    body: dict[str, Any] = r.json()
    return body


async def summary(http: httpx.AsyncClient, rollup: str, node: str, period: str) -> dict[str, Any]:
    """The metrics of `node` in `period`, from the rollup's summary."""
    body = await get_json(http, f"{rollup}/v1/nodes/{node}/summary", period=period)
    metrics: dict[str, Any] = body["metrics"]
    return metrics


def checked(metrics: dict[str, Any]) -> dict[str, int]:
    """The metrics the generator predicts exactly, missing ones as 0."""
    return {m: int(metrics.get(m) or 0) for m in CHECKED_METRICS}


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

    await wait_until(known, timeout=within, interval=0.25, message="the rollup to know the tree")
    return {
        "registry_put_s": round(put_s, 2),
        "visible_in_rollup_s": round(time.perf_counter() - started, 2),
    }
