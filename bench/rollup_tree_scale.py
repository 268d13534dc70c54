"""The rollup's in-memory tree at national scale: RSS and snapshot times for N branches.

Builds a `Tree` from synthetic versions shaped like the benchmark's trees (a root, counties
of ~600 branches, townships of ~35), each string a fresh object as when loaded from
PostgreSQL, then asks what the query API asks: the snapshots of a year's Party Days and
month ends (24 days), the same again (cached), and paths of sample branches. Prints one
JSON object: RSS (psutil) after each step, seconds per step.

    python -m bench.rollup_tree_scale --branches 1000000 [--dated 0.01]

`--dated F` gives a fraction F of branches an opening date spread over the year, so that
many days differ (the worst case for snapshot caches). Run it with another checkout's
`huibao_rollup` first on PYTHONPATH to compare two versions of the tree.

`--service` measures the rollup service itself instead: the versions are copied into a
fresh database of an embedded PostgreSQL, a query-only rollup process is started on it
(it loads the tree at start-up), and its peak RSS is sampled while it starts, warms its
snapshots and answers a summary and a children listing of the root for `--periods`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import random
import sys
import time
from collections.abc import Iterator
from typing import Any

import psutil
from tests.support.waits import wait_until

from huibao_rollup.domain import tree as tree_module
from huibao_rollup.domain.tree import ALWAYS, Tree, UnitVersion

YEAR = 2026


def mib() -> float:
    """This process's resident set size, MiB."""
    return round(float(psutil.Process().memory_info().rss) / (1 << 20), 1)


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages."""
    with open("/proc/loadavg", encoding="ascii") as f:
        return " ".join(f.read().split()[:3])


def versions(branches: int, dated: float, seed: int) -> Iterator[UnitVersion]:
    """Root, counties, townships and branches, parents first, ~600 and ~35 per level."""
    rng = random.Random(seed)
    root = "bnation"
    yield UnitVersion(root, ALWAYS, 1, "upsert", "全国", "city", None, 0, None, None)
    made = 0
    c = 0
    seq = 1
    while made < branches:
        county = f"{root}.c{c:05d}"
        seq += 1
        yield UnitVersion(
            county, ALWAYS, seq, "upsert", f"第{c + 1}县", "county", f"{root}", 0, None, None
        )
        in_county = min(branches - made, max(50, int(rng.lognormvariate(6.2, 0.5))))
        t = 0
        while in_county > 0:
            town = f"{county}.t{t:03d}"
            seq += 1
            yield UnitVersion(
                town, ALWAYS, seq, "upsert", f"第{c + 1}县第{t + 1}镇", "township", f"{county}",
                0, None, None,
            )  # fmt: skip
            size = min(in_county, max(3, int(rng.lognormvariate(3.4, 0.6))))
            for b in range(size):
                opened = None
                if dated and rng.random() < dated:
                    opened = dt.date(YEAR, 1, 1) + dt.timedelta(days=rng.randrange(365))
                seq += 1
                yield UnitVersion(
                    f"{town}.b{b:03d}", ALWAYS, seq, "upsert", f"第{t + 1}镇第{b + 1}党支部",
                    "branch", f"{county}.t{t:03d}", max(3, int(rng.lognormvariate(3.2, 0.6))),
                    opened, None,
                )  # fmt: skip
            made += size
            in_county -= size
            t += 1
        c += 1


def days_asked() -> list[dt.date]:
    """The days a year of monthly queries snapshots: each month's 26th and last day."""
    out = []
    for m in range(1, 13):
        first = dt.date(YEAR, m, 1)
        last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
        out += [dt.date(YEAR, m, 26), last]
    return out


async def service_run(args: argparse.Namespace) -> dict[str, Any]:  # noqa: PLR0915
    """Peak RSS of a query-only rollup process serving a tree of `args.branches`."""
    import httpx

    from huibao_rollup.adapters.postgres import Repository
    from huibao_stack.stack import EmbeddedStack

    out: dict[str, Any] = {"tree_module": tree_module.__file__, "branches": args.branches}
    stack = EmbeddedStack(services=(), ready_timeout=1800)
    await stack.start()
    try:
        url = await stack.infra.fresh_database("rollup_tree_scale")
        repo = Repository()
        await repo.connect(url, 2)
        fields = (
            *("unit", "effective", "seq", "kind", "name", "level", "parent", "members"),
            *("opened", "closed", "merged_into"),
        )
        rows = [
            tuple(getattr(v, f) for f in fields)
            for v in versions(args.branches, args.dated, args.seed)
        ]
        async with repo.pool.acquire() as conn:
            await conn.copy_records_to_table(
                "unit_versions", schema_name="rollup", records=rows, columns=fields
            )
        out["units"] = len(rows)
        del rows
        await repo.close()
        peak = 0.0
        proc_pid: list[int] = []

        async def sample() -> None:
            nonlocal peak
            while True:
                for pid in proc_pid:
                    with contextlib.suppress(psutil.Error):
                        rss = psutil.Process(pid).memory_info().rss / (1 << 20)
                        peak = max(peak, rss)
                await asyncio.sleep(0.25)

        sampler = asyncio.create_task(sample())
        started = time.perf_counter()
        start = asyncio.create_task(
            stack.add_replica("rollup", env={"DATABASE_URL": url, "HUIBAO_CONSUME_EVENTS": "false"})
        )

        def started_replica() -> bool:
            return bool(stack.replicas("rollup")) and stack.replicas("rollup")[0].pid is not None

        await wait_until(started_replica, timeout=600, interval=0.1, message="the rollup")
        proc_pid.append(stack.replicas("rollup")[0].pid or 0)
        proc = await start
        out["ready_s"] = round(time.perf_counter() - started, 1)
        out["rss_ready_mib"] = round(psutil.Process(proc.pid or 0).memory_info().rss / (1 << 20))
        await asyncio.sleep(args.settle)  # snapshots are warmed in the background
        out["rss_settled_mib"] = round(psutil.Process(proc.pid or 0).memory_info().rss / (1 << 20))
        headers = {"Authorization": f"Bearer {stack.admin_token}"}
        timings: dict[str, float] = {}
        async with httpx.AsyncClient(base_url=proc.url, headers=headers, timeout=1800) as http:
            for period in args.periods.split(","):
                for what in ("summary", "children"):
                    t = time.perf_counter()
                    r = await http.get(f"/v1/nodes/bnation/{what}", params={"period": period})
                    r.raise_for_status()
                    timings[f"{what} {period} first_s"] = round(time.perf_counter() - t, 2)
                    t = time.perf_counter()
                    await http.get(f"/v1/nodes/bnation/{what}", params={"period": period})
                    timings[f"{what} {period} again_ms"] = round((time.perf_counter() - t) * 1e3)
            out["root_branches"] = (
                r.json()["node"]["id"]
                and (await http.get("/v1/nodes/bnation/summary", params={"period": period})).json()[
                    "metrics"
                ]["orgunits.branches"]
            )
        out["timings"] = timings
        out["rss_end_mib"] = round(psutil.Process(proc.pid or 0).memory_info().rss / (1 << 20))
        out["rss_peak_mib"] = round(peak)
        sampler.cancel()
    finally:
        await stack.stop()
    out["loadavg"] = loadavg()
    return out


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915
    """Build, snapshot, measure; print JSON."""
    ap = argparse.ArgumentParser(prog="python -m bench.rollup_tree_scale", description=__doc__)
    ap.add_argument("--branches", type=int, default=1_000_000)
    ap.add_argument("--dated", type=float, default=0.0, help="fraction of dated branches")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--days", type=int, default=24, help="days snapshotted (at most 24)")
    ap.add_argument("--service", action="store_true", help="measure a rollup process")
    ap.add_argument("--periods", default="2026-06", help="--service: periods asked, comma list")
    ap.add_argument("--settle", type=float, default=10, help="--service: seconds before asking")
    args = ap.parse_args(argv)
    if args.service:
        json.dump(asyncio.run(service_run(args)), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    out: dict[str, Any] = {"tree_module": tree_module.__file__, "branches": args.branches}
    gc.collect()
    out["rss_start_mib"] = mib()
    t = time.perf_counter()
    tree = Tree()
    units = 0
    for v in versions(args.branches, args.dated, args.seed):
        tree.apply(v)
        units += 1
    out["units"] = units
    out["apply_s"] = round(time.perf_counter() - t, 2)
    gc.collect()
    out["rss_tree_mib"] = mib()
    days = days_asked()[: args.days]
    t = time.perf_counter()
    first = tree.snapshot(days[0])
    out["first_snapshot_s"] = round(time.perf_counter() - t, 2)
    out["root_branches"] = first.branches["bnation"]
    out["rss_one_snapshot_mib"] = mib()
    t = time.perf_counter()
    for d in days:
        tree.snapshot(d)
    out["all_snapshots_s"] = round(time.perf_counter() - t, 2)
    gc.collect()
    out["rss_all_snapshots_mib"] = mib()
    out["days"] = len(days)
    t = time.perf_counter()
    for d in days:
        tree.snapshot(d).branches.get("bnation.c00000", 0)
    out["all_again_cached_ms"] = round((time.perf_counter() - t) * 1000, 2)
    sample = [u for i, u in enumerate(tree.units()) if i % 997 == 0][:1000]
    t = time.perf_counter()
    for u in sample:
        tree.path_on(u, days[-1])
    out["path_on_us"] = round((time.perf_counter() - t) / len(sample) * 1e6, 1)
    snap = tree.snapshot(days[-1])
    t = time.perf_counter()
    kids = snap.children.get(sample[1].rsplit(".", 1)[0], ())
    for u in kids:
        tree.version_on(u, days[-1])
    out["children_of_a_township_us"] = round((time.perf_counter() - t) * 1e6, 1)
    out["rss_end_mib"] = mib()
    out["loadavg"] = loadavg()
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
