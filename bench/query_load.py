"""The query generator from the shell: `python -m bench.query_load`.

Against a running API (paths as arguments, or one a line in a file with `--paths-file`):

    python -m bench.query_load --url http://127.0.0.1:8002 --token T --rate 500 \\
        --duration 15 /v1/nodes/bcity/summary?period=2026-07

or, with `--city N`, against an embedded stack of its own (reporting + rollup) loaded with a
city of N branches and a month workload. Each path may be given as `label=path`. The load
itself is bench/http_load.py's `run_load` (open loop, latency from each request's
scheduled instant); the result is printed as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from tests.support.waits import wait_until

from bench.common import checked, load_tree, summary
from bench.generate import Tree, Workload, city_tree, month_workload, months_before
from bench.http_load import run_load
from bench.producing import LoadProducer, new_producer, produce_all, serialise
from bench.query_mix import PathSpec, mix_paths
from huibao_stack.stack import EmbeddedStack


def _parse_paths(items: Sequence[str]) -> list[PathSpec]:
    out: list[PathSpec] = []
    for raw in items:
        item = raw.strip()
        if not item or item.startswith("#"):
            continue
        label, sep, path = item.partition("=")
        out.append((label, path) if sep and label and not label.startswith("/") else item)
    return out


def _loadavg() -> str:
    with open("/proc/loadavg", encoding="ascii") as f:
        return " ".join(f.read().split()[:3])


async def _load_events(
    http: httpx.AsyncClient, stack: EmbeddedStack, tree: Tree, work: Workload
) -> dict[str, Any]:
    """Produce the workload onto the submitted topic; wait until the city's totals match."""
    producer = await new_producer(stack.bootstrap_servers)
    started = time.perf_counter()
    try:
        await produce_all(producer, serialise(work.events))
    finally:
        await producer.stop()
    want = {m: work.expected.of(tree.root, m) for m in work.months}
    roll = stack.urls["rollup"]

    async def visible() -> bool:
        got = [await summary(http, roll, tree.root, m) for m in work.months]
        return all(checked(g) == want[m] for g, m in zip(got, work.months, strict=True))

    await wait_until(visible, timeout=600, interval=0.25, message="the workload")
    elapsed = time.perf_counter() - started
    return {"events": len(work.events), "events_per_s": round(len(work.events) / elapsed)}


async def _hold(
    file: str,
    stack: EmbeddedStack,
    targets: dict[str, str],
    token: str,
    paths: list[PathSpec],
) -> None:
    """For profiling by hand: write where things are to `file`, wait for `file`.done."""
    pids = {n: p.pid for n, p in zip(targets, stack.replicas("rollup"), strict=False)}
    hold = {
        "targets": targets,
        "pids": pids,
        "token": token,
        "paths": paths[:200],
        "bootstrap": stack.bootstrap_servers,
        "database_url": stack.database_url,
    }
    done = Path(file + ".done")
    await asyncio.to_thread(Path(file).write_text, json.dumps(hold), "utf-8")
    while not await asyncio.to_thread(done.exists):  # noqa: ASYNC110 (a file, not an event)
        await asyncio.sleep(1)


async def stack_run(args: argparse.Namespace) -> dict[str, Any]:
    """`--city N`: an embedded stack (reporting + rollup), a city of N branches and a month
    workload through the pipeline, then the query mix idle and while events are produced
    (`--ingest-rate`), against the applying rollup and a query-only replica."""
    today = dt.date.today()
    tree = city_tree(args.city, seed=7)
    months = months_before(today, args.months)
    work = month_workload(
        tree, months, seed=7, not_after=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    )
    paths = mix_paths(tree, months, 4000, seed=7)
    out: dict[str, Any] = {"branches": len(tree.branches), "months": months}
    stack = EmbeddedStack(services=("reporting", "rollup"))
    await stack.start()
    try:
        token = stack.admin_token
        async with httpx.AsyncClient(
            headers={"Authorization": f"Bearer {token}"}, timeout=300
        ) as http:
            out["tree_load"] = await load_tree(http, stack, tree, 600)
            out["events"] = await _load_events(http, stack, tree, work)
        targets = {"applier": stack.urls["rollup"]}
        if args.replica:
            reader = await stack.add_replica("rollup", env={"HUIBAO_CONSUME_EVENTS": "false"})
            targets["query_only"] = reader.url
        if args.hold:
            await _hold(args.hold, stack, targets, token, paths)

        async def measure(url: str) -> dict[str, Any]:
            res = await run_load(
                url,
                token,
                paths,
                args.rate,
                args.duration,
                connections=args.connections,
                warmup=args.warmup,
            )
            res["loadavg_after"] = _loadavg()
            return res

        for name, url in targets.items():
            out[f"idle/{name}"] = await measure(url)
        if args.ingest_rate > 0:
            producer = await new_producer(stack.bootstrap_servers)
            load_day = max(today.replace(day=1), today - dt.timedelta(days=1))
            feed = LoadProducer(producer, tree, load_day, probe_branch=tree.branches[0])
            try:
                for name, url in targets.items():
                    ingest = asyncio.create_task(
                        feed.run(args.ingest_rate, args.duration + args.warmup + 5, None)
                    )
                    await asyncio.sleep(2)
                    res = await measure(url)
                    res["ingest_rate"] = args.ingest_rate
                    out[f"ingesting/{name}"] = res
                    await ingest
            finally:
                await producer.stop()
    finally:
        await stack.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: run the load and print the result as JSON."""
    ap = argparse.ArgumentParser(
        prog="python -m bench.query_load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("paths", nargs="*", help="request paths (`label=path` to name them)")
    ap.add_argument("--url", help="base URL, e.g. http://127.0.0.1:8002")
    ap.add_argument(
        "--city",
        type=int,
        default=0,
        help="instead of --url: start an embedded stack with a city of this many branches",
    )
    ap.add_argument("--months", type=int, default=3, help="--city: months of workload")
    ap.add_argument("--ingest-rate", type=float, default=0, help="--city: events/s meanwhile")
    ap.add_argument("--replica", action="store_true", help="--city: also a query-only rollup")
    ap.add_argument(
        "--hold",
        default=None,
        help="--city: write targets, pids, token and paths to this JSON file after loading,"
        " and wait until FILE.done exists (to profile by hand)",
    )
    ap.add_argument("--token", default=None, help="bearer token")
    ap.add_argument("--paths-file", default=None, help="a file of paths, one a line")
    ap.add_argument("--rate", type=float, default=500.0, help="requests per second")
    ap.add_argument("--duration", type=float, default=15.0, help="seconds measured")
    ap.add_argument("--warmup", type=float, default=0.0, help="seconds run before measuring")
    ap.add_argument("--connections", type=int, default=8, help="keep-alive connections")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    args = ap.parse_args(argv)
    if args.city:
        json.dump(asyncio.run(stack_run(args)), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not args.url:
        ap.error("--url or --city is required")
    items = list(args.paths)
    if args.paths_file:
        with open(args.paths_file, encoding="utf-8") as f:
            items += f.read().splitlines()
    paths = _parse_paths(items)
    if not paths:
        ap.error("no paths given")
    result = asyncio.run(
        run_load(
            args.url,
            args.token,
            paths,
            args.rate,
            args.duration,
            connections=args.connections,
            timeout=args.timeout,
            warmup=args.warmup,
        )
    )
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if not result["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
